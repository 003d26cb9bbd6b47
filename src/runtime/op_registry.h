// Op definitions: one table entry per (domain, op type) with its reference kernel. Gradient rules are not kernels'
// business: the training layer keeps its own table (train/grad.h).
#pragma once
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "ir/graph.h"

namespace lowbit {

// Runs a subgraph (an If branch, a Loop or Scan body) in the scope of the node being computed: the body's inputs
// are bound to `inputs` in order, values it reads from enclosing graphs resolve to their current values, and its
// outputs come back in order.
class SubgraphRunner {
 public:
  virtual ~SubgraphRunner() = default;
  virtual std::vector<Tensor> run(const Graph& body, const std::vector<Tensor>& inputs) const = 0;
};

// One per node and executor: where a kernel may keep what it prepared (a compiled primitive, weights in its own
// layout) from one run to the next. A cache only: a kernel's results may not depend on whether it is filled, and
// it must check that what it kept still matches its inputs (shapes, and the weight buffer it was built from).
struct KernelCache {
  std::mutex mu;
  std::shared_ptr<void> data;
};

// A clamp the executor folded into the node being computed, taken from the Relu or constant-bound Clip that was the
// only reader of the node's output: the kernel returns y > lo ? min(y, hi) : lo in place of y. For a Relu that is
// Relu itself; for a Clip it differs only on NaN (which becomes lo) and -0 (which becomes lo when lo is 0).
struct FusedClamp {
  float lo = 0, hi = 0;
};

// What a kernel sees: the node (attributes), the opset of its domain, and its input tensors; control-flow ops also
// get a runner for their subgraphs (nullptr where none is available, e.g. constant folding).
struct OpContext {
  const Node& node;
  int64_t opset;
  const std::vector<const Tensor*>& ins;
  const SubgraphRunner* subgraphs = nullptr;
  KernelCache* cache = nullptr;  // nullptr where nothing is kept between calls (eval_node, constant folding)
  // A layout-aware kernel may return its output channels-last (every reader of it is layout-aware too).
  bool channels_last_out = false;
  const FusedClamp* fused_clamp = nullptr;  // set only for ops registered with fuses_clamp

  size_t num_inputs() const { return ins.size(); }
  bool has(size_t i) const { return i < ins.size() && ins[i] != nullptr && ins[i]->defined(); }
  const Tensor& in(size_t i) const {
    check(has(i), node.describe(), ": missing required input ", i);
    return *ins[i];
  }
  std::string where() const { return node.describe(); }
};

using ComputeFn = std::vector<Tensor> (*)(const OpContext&);

struct OpDef {
  std::string op_type;
  std::string domain;  // "" = ai.onnx
  int since_version = 1;  // lowest opset the kernel implements (older versions differ in semantics)
  ComputeFn compute = nullptr;
  // Takes channels-last inputs (core/tensor.h Layout) as they are; every other kernel gets plain inputs only.
  bool layout_aware = false;
  // Applies OpContext::fused_clamp to its first output.
  bool fuses_clamp = false;
};

class OpRegistry {
 public:
  // The one registry holding every built-in op; built on first use from explicit registration calls.
  static const OpRegistry& builtin();
  void add(OpDef def);
  // nullptr when the op is unknown or the model's opset is older than the kernel supports.
  const OpDef* find(const std::string& domain, const std::string& op_type, int64_t opset) const;
  // Marks registered ops of the default domain as layout-aware.
  void set_layout_aware(const std::vector<std::string>& op_types);
  std::vector<std::string> op_types() const;

 private:
  std::unordered_map<std::string, OpDef> ops_;  // key: domain + "::" + op_type
};

// Registration functions, one per op family (called explicitly by OpRegistry::builtin()).
void register_math_ops(OpRegistry& r);
void register_nn_ops(OpRegistry& r);
void register_shape_ops(OpRegistry& r);
void register_quant_ops(OpRegistry& r);
void register_index_ops(OpRegistry& r);
void register_control_ops(OpRegistry& r);
void register_rnn_ops(OpRegistry& r);
void register_int_ops(OpRegistry& r);

}  // namespace lowbit
