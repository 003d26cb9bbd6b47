#include "train/tape.h"
#include "ir/fed_inputs.h"

#include <chrono>

#include "ir/passes.h"
#include "train/grad.h"

namespace lowbit::train {

Tape::Tape(const Model& m) : model_(m) {
  topological_sort(model_.graph);
  std::map<std::string, std::string> missing;
  for (auto& n : model_.graph.nodes) {
    check(!has_subgraphs(n), n.describe(), ": training covers the main graph only; this node has subgraphs");
    const OpDef* d = OpRegistry::builtin().find(n.domain, n.op_type, model_.opset(n.domain));
    if (!d) missing.emplace(n.op_type, n.describe());
    defs_.push_back(d);
    caches_.push_back(std::make_unique<KernelCache>());
  }
  if (!missing.empty()) {
    std::string list;
    for (auto& [op, where] : missing) list += (list.empty() ? "" : ", ") + op + " (" + where + ")";
    fail("unsupported op", missing.size() > 1 ? "s" : "", ": ", list);
  }
}

Tensor& Tape::param(const std::string& name) {
  auto it = model_.graph.initializers.find(name);
  check(it != model_.graph.initializers.end(), "no parameter named '", name, "'");
  return it->second;
}

const Tensor& Tape::value(const std::string& name) const {
  auto it = values_.find(name);
  if (it != values_.end()) return it->second;
  auto ii = model_.graph.initializers.find(name);
  check(ii != model_.graph.initializers.end(), "no value named '", name, "' in the last forward pass");
  return ii->second;
}

void Tape::forward(const std::map<std::string, Tensor>& feeds) {
  values_.clear();
  const Graph& g = model_.graph;
  for (auto* in : fed_inputs(g)) {
    auto it = feeds.find(in->name);
    check(it != feeds.end(), "input '", in->name, "' is not fed");
    values_[in->name] = it->second;
  }
  static const Tensor none;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const Node& n = g.nodes[i];
    std::vector<const Tensor*> ins;
    for (auto& v : n.inputs) ins.push_back(v.empty() ? nullptr : &value(v));
    OpContext ctx{n, model_.opset(n.domain), ins};
    ctx.cache = caches_[i].get();
    auto t0 = profile_ ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point();
    auto outs = defs_[i]->compute(ctx);
    if (profile_) times_[n.op_type].forward += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    for (size_t k = 0; k < n.outputs.size() && k < outs.size(); ++k)
      if (!n.outputs[k].empty()) values_[n.outputs[k]] = outs[k].to_plain();
  }
}

int64_t Tape::saved_bytes() const {
  int64_t b = 0;
  for (auto& [k, v] : values_) b += (int64_t)v.nbytes();
  return b;
}

std::map<std::string, Tensor> Tape::backward(const std::map<std::string, Tensor>& seeds,
                                             const std::set<std::string>& wrt) {
  const Graph& g = model_.graph;
  // Values a gradient can flow to a parameter through: the parameters and every float output of a node that reads
  // one of them.
  std::set<std::string> live(wrt.begin(), wrt.end());
  for (auto& n : g.nodes) {
    bool any = false;
    for (auto& v : n.inputs) any = any || live.count(v);
    if (any)
      for (auto& o : n.outputs)
        if (!o.empty() && values_.count(o) && values_.at(o).dtype() == DType::Float32) live.insert(o);
  }
  std::unordered_map<std::string, Tensor> grads;
  for (auto& [k, v] : seeds) {
    check(v.shape() == value(k).shape(), "gradient for '", k, "' has shape ", shape_str(v.shape()), ", the value ",
          shape_str(value(k).shape()));
    grads[k] = v;
  }
  for (size_t i = g.nodes.size(); i-- > 0;) {
    const Node& n = g.nodes[i];
    std::vector<Tensor> gouts(n.outputs.size());
    bool any_out = false;
    for (size_t k = 0; k < n.outputs.size(); ++k) {
      auto it = grads.find(n.outputs[k]);
      if (it != grads.end()) gouts[k] = it->second, any_out = true;
    }
    if (!any_out) continue;
    std::vector<char> need(n.inputs.size(), 0);
    bool any_in = false;
    for (size_t k = 0; k < n.inputs.size(); ++k) {
      need[k] = !n.inputs[k].empty() && live.count(n.inputs[k]);
      any_in = any_in || need[k];
    }
    if (!any_in) continue;
    GradRule rule = find_grad_rule(n.domain, n.op_type);
    check(rule != nullptr, "no gradient rule for ", n.op_type, " (", n.describe(), "), which lies between a trained "
          "parameter and the loss");
    std::vector<const Tensor*> ins;
    for (auto& v : n.inputs) ins.push_back(v.empty() ? nullptr : &value(v));
    std::vector<Tensor> outs;
    for (auto& o : n.outputs) outs.push_back(o.empty() || !values_.count(o) ? Tensor() : values_.at(o));
    GradContext ctx{n, model_.opset(n.domain), ins, outs, gouts, need};
    auto t0 = profile_ ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point();
    auto gin = rule(ctx);
    if (profile_) times_[n.op_type].backward += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    for (size_t k = 0; k < n.inputs.size(); ++k) {
      if (!need[k] || k >= gin.size() || !gin[k].defined()) continue;
      check(gin[k].shape() == ins[k]->shape(), n.describe(), ": gradient rule gave shape ", shape_str(gin[k].shape()),
            " for input ", k, " of shape ", shape_str(ins[k]->shape()));
      auto it = grads.find(n.inputs[k]);
      if (it == grads.end()) grads[n.inputs[k]] = gin[k];
      else it->second = add_grads(it->second, gin[k]);
    }
    for (auto& o : n.outputs) grads.erase(o);  // consumed: frees memory as the pass goes
  }
  std::map<std::string, Tensor> r;
  for (auto& w : wrt) {
    auto it = grads.find(w);
    r[w] = it != grads.end() ? it->second : zeros_like(value(w));
  }
  return r;
}

}  // namespace lowbit::train
