// lowbit public API: model description, constant folding and Session over the executor.
#include <algorithm>

#include "ir/passes.h"
#include "lowbit/lowbit.h"
#include "runtime/op_registry.h"

namespace lowbit {

const char* version() { return LOWBIT_VERSION_STRING; }

std::string dims_string(const ValueInfo& v) {
  if (!v.has_shape) return "?";
  std::string s = "[";
  for (size_t i = 0; i < v.shape.size(); ++i)
    s += (i ? "," : "") + (v.shape[i].fixed() ? std::to_string(v.shape[i].value)
                                              : (v.shape[i].param.empty() ? "?" : v.shape[i].param));
  return s + "]";
}

ModelInfo describe(const Model& m) {
  const Graph& g = m.graph;
  ModelInfo info;
  info.ir_version = m.ir_version;
  info.producer = m.producer_name + (m.producer_version.empty() ? "" : " " + m.producer_version);
  for (auto& [d, v] : m.opsets) info.opsets[d.empty() ? "ai.onnx" : d] = v;
  for (auto& v : g.inputs)
    if (!g.is_initializer(v.name)) info.inputs.push_back(v);
  info.outputs = g.outputs;
  for (auto& [k, t] : g.initializers) {
    info.parameters += t.numel();
    info.parameter_bytes += t.nbytes();
  }
  info.initializers = g.initializers.size();
  info.nodes = g.nodes.size();
  for (auto& n : g.nodes) {
    std::string k = n.domain.empty() ? n.op_type : n.domain + "." + n.op_type;
    info.ops[k]++;
    if (!OpRegistry::builtin().find(n.domain, n.op_type, m.opset(n.domain)) &&
        std::find(info.unsupported_ops.begin(), info.unsupported_ops.end(), k) == info.unsupported_ops.end())
      info.unsupported_ops.push_back(k);
  }
  return info;
}

int fold_constant_subgraphs(Model& m) {
  Executor check_ops(m);  // fails early, naming unsupported ops, before any folding
  int64_t opset = m.opset("");
  return fold_constants(
      m.graph, [&](const Node& n, const std::vector<Tensor>& in) { return eval_node(n, opset, in); },
      shape_subgraph_ops());
}

Session::Session(const Model& model) : ex_(std::make_unique<Executor>(model)) {}
Session::~Session() = default;
Session::Session(Session&&) noexcept = default;
Session& Session::operator=(Session&&) noexcept = default;

std::vector<std::string> Session::input_names() const {
  std::vector<std::string> r;
  for (auto* v : ex_->required_inputs()) r.push_back(v->name);
  return r;
}

std::vector<std::string> Session::output_names() const {
  std::vector<std::string> r;
  for (auto& o : ex_->model().graph.outputs) r.push_back(o.name);
  return r;
}

TensorMap Session::run(const TensorMap& feeds, const std::vector<std::string>& fetch) const {
  const Graph& g = ex_->model().graph;
  for (auto& [name, _] : feeds)
    check(g.is_graph_input(name), "the model has no input named '", name, "'");
  for (auto* r : ex_->required_inputs())
    check(feeds.count(r->name), "no value given for model input '", r->name, "'");
  return ex_->run(feeds, fetch);
}

void Session::add_hook(ValueHook hook, const std::vector<std::string>& values) {
  if (values.empty()) ex_->add_hook(std::move(hook));
  else ex_->add_hook(std::move(hook), values);
}

const Model& Session::model() const { return ex_->model(); }

}  // namespace lowbit
