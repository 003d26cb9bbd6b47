// A tape over the graph: a forward pass that keeps every value, and a reverse pass that applies the gradient rule
// of each node (train/grad.h) from the last node to the first.
#pragma once
#include <map>
#include <memory>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "ir/graph.h"
#include "runtime/op_registry.h"

namespace lowbit::train {

class Tape {
 public:
  // Sorts a copy of the model. Throws Error naming every op without a kernel, and any If/Loop/Scan (training runs
  // the main graph only).
  explicit Tape(const Model& m);
  Tape(const Tape&) = delete;
  Tape& operator=(const Tape&) = delete;

  // The model whose initializers are the parameters; change them through param() between steps. A parameter is
  // replaced by a new tensor, never written in place (kernels may cache what they prepared from a buffer).
  const Model& model() const { return model_; }
  Tensor& param(const std::string& name);

  // Runs every node on `feeds` (every graph input that is not an initializer) and keeps all values.
  void forward(const std::map<std::string, Tensor>& feeds);
  const Tensor& value(const std::string& name) const;
  // Bytes held by the values of the last forward pass (what the reverse pass needs).
  int64_t saved_bytes() const;

  // Reverse pass from the given output gradients; returns the gradient of each name in `wrt` (initializers),
  // zeros where the seeds do not reach it. Throws Error naming the node when a rule is missing for a node on a
  // path from a parameter to a seed.
  std::map<std::string, Tensor> backward(const std::map<std::string, Tensor>& seeds, const std::set<std::string>& wrt);

  // Wall seconds per op type in the forward and reverse passes, accumulated while profiling is on.
  struct OpTime {
    double forward = 0, backward = 0;
  };
  void set_profiling(bool on) { profile_ = on; }
  const std::map<std::string, OpTime>& op_times() const { return times_; }

 private:
  Model model_;
  std::vector<const OpDef*> defs_;
  std::vector<std::unique_ptr<KernelCache>> caches_;
  std::unordered_map<std::string, Tensor> values_;
  bool profile_ = false;
  std::map<std::string, OpTime> times_;
};

}  // namespace lowbit::train
