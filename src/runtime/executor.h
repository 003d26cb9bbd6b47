// FP32 executor over the IR with hooks to observe or replace any value as it is produced.
#pragma once
#include <functional>
#include <map>
#include <set>
#include <string>
#include <unordered_set>
#include <vector>

#include "ir/graph.h"
#include "runtime/op_registry.h"

namespace lowbit {

using TensorMap = std::map<std::string, Tensor>;

// Called for every graph input and every node output as soon as it exists. `producer` is nullptr for graph
// inputs. The hook may assign a new tensor to `value` (quantizers replace values this way).
using ValueHook = std::function<void(const Node* producer, const std::string& name, Tensor& value)>;

// What one run held at its high-water mark, counted by the executor itself: the values it keeps (graph inputs fed,
// node outputs not yet consumed for the last time; initializers excluded), each counted with its own bytes.
struct RunStats {
  int64_t peak_live_values = 0;
  int64_t peak_live_bytes = 0;
  // With profiling on (Executor::set_profiling): wall seconds spent in each main-graph node's kernel, indexed like
  // model().graph.nodes (a node that did not run has 0; a control-flow node includes its subgraphs).
  std::vector<double> node_seconds;
  // Main-graph nodes whose output was handed on channels-last, and Relu/Clip nodes folded into their producer.
  int64_t channels_last_outputs = 0;
  int64_t folded_clamps = 0;
};

class Executor {
 public:
  // Validates the model: sorts it, and fails with one message naming every unsupported op type (and the first
  // node using each) before anything runs.
  explicit Executor(const Model& model, const OpRegistry& ops = OpRegistry::builtin());
  // Plans are keyed by the addresses of this executor's own graphs: a copy or move would point into another one.
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  // A hook sees every value, or only the named ones. Values no hook watches may stay channels-last between
  // layout-aware kernels and may be folded (a Conv's output into its Relu); watched values never are, and hooks
  // always get them plain.
  // `any_layout`: the hook reads values through Tensor::storage() only, element-wise (a min/max or histogram
  // observer), so it may get them channels-last and leaves them so.
  void add_hook(ValueHook h) { hooks_.push_back({std::move(h), nullptr, false}); }
  void add_hook(ValueHook h, const std::vector<std::string>& only, bool any_layout = false) {
    hooks_.push_back({std::move(h), std::make_shared<const std::unordered_set<std::string>>(only.begin(), only.end()),
                      any_layout});
  }
  void clear_hooks() { hooks_.clear(); }
  // Times every main-graph node's kernel into RunStats::node_seconds (costs two clock reads per node).
  void set_profiling(bool on) { profile_ = on; }

  // Runs the graph. `fetch` empty = the graph outputs; otherwise only the nodes the fetched values depend on run. Inputs are checked against declared dtype and fixed
  // dims; initializers may be overridden by feeding a value of the same name if it is also a graph input.
  TensorMap run(const TensorMap& feeds, const std::vector<std::string>& fetch = {}, RunStats* stats = nullptr) const;

  const Model& model() const { return model_; }
  // Graph inputs that must be fed (not backed by an initializer).
  std::vector<const ValueInfo*> required_inputs() const;

 private:
  struct Scope;
  class ScopeRunner;
  // Per graph (the main one and every subgraph): the kernel of each node and the outer values its subgraphs read.
  struct Plan {
    std::vector<const OpDef*> defs;
    std::vector<std::vector<std::string>> implicit;
    std::vector<std::unique_ptr<KernelCache>> caches;
    // Node may hand its output over channels-last: every reader in this graph is layout-aware, nothing reads it
    // from a subgraph, and it is not a graph output.
    std::vector<char> channels_last_ok;
    // A Relu or constant Clip that alone reads node i's output, folded into node i when no hook or fetch needs
    // that output: its index (or -1) and the clamp.
    std::vector<int64_t> fused_next;
    std::vector<FusedClamp> clamps;
  };
  void plan_graph(const Graph& g, std::map<std::string, std::string>& missing);
  void plan_folds(const Graph& g, Plan& p) const;
  // Runs the needed nodes of g in scope s. Hooks fire only for the main graph (subgraphs run in float).
  void exec(const Graph& g, Scope& s, const std::vector<char>& needed, const std::set<std::string>& keep,
            bool top, std::vector<double>* node_seconds) const;
  std::vector<Tensor> run_subgraph(const Graph& body, const Scope& parent, const std::vector<Tensor>& inputs) const;

  Model model_;
  const OpRegistry& ops_;
  std::map<const Graph*, Plan> plans_;
  struct Hook {
    ValueHook fn;
    std::shared_ptr<const std::unordered_set<std::string>> only;  // null: every value
    bool any_layout = false;
  };
  bool watched(const std::string& value) const;
  bool watched_plain(const std::string& value) const;  // by a hook that needs the plain layout
  void call_hooks(const Node* producer, const std::string& value, Tensor& t) const;
  std::vector<Hook> hooks_;
  bool profile_ = false;
};

// Runs one node on given inputs (used by constant folding and tests).
std::vector<Tensor> eval_node(const Node& n, int64_t opset, const std::vector<Tensor>& inputs,
                              const OpRegistry& ops = OpRegistry::builtin());

}  // namespace lowbit
