// Executor: validation, input checks, node-by-node execution with hooks, freeing values after last use.
#include "runtime/executor.h"

#include <algorithm>
#include <set>
#include <unordered_map>

#include "ir/passes.h"

namespace lowbit {

Executor::Executor(const Model& model, const OpRegistry& ops) : model_(model), ops_(ops) {
  topological_sort(model_.graph);
  std::map<std::string, std::string> missing;  // op type -> first node
  for (auto& n : model_.graph.nodes) {
    const OpDef* d = ops_.find(n.domain, n.op_type, model_.opset(n.domain));
    defs_.push_back(d);
    std::string key = n.domain.empty() ? n.op_type : n.domain + "." + n.op_type;
    if (!d && !missing.count(key)) {
      std::string why = ops_.find(n.domain, n.op_type, 1000) ? " (opset " + std::to_string(model_.opset(n.domain)) + " too old)" : "";
      missing[key] = "'" + (n.name.empty() ? n.outputs.at(0) : n.name) + "'" + why;
    }
  }
  if (!missing.empty()) {
    std::string msg = "unsupported op" + std::string(missing.size() > 1 ? "s" : "") + ": ";
    bool first = true;
    for (auto& [op, node] : missing) {
      msg += (first ? "" : ", ") + op + " (first at node " + node + ")";
      first = false;
    }
    unsupported(msg);
  }
}

std::vector<const ValueInfo*> Executor::required_inputs() const {
  std::vector<const ValueInfo*> r;
  for (auto& i : model_.graph.inputs)
    if (!model_.graph.is_initializer(i.name)) r.push_back(&i);
  return r;
}

namespace {
void check_input(const ValueInfo& vi, const Tensor& t) {
  if (vi.dtype != DType::Undefined)
    check(t.dtype() == vi.dtype, "input '", vi.name, "': expected dtype ", dtype_name(vi.dtype), ", got ",
          dtype_name(t.dtype()));
  if (!vi.has_shape) return;
  std::string expected = "[";
  for (size_t i = 0; i < vi.shape.size(); ++i)
    expected += (i ? "," : "") + (vi.shape[i].fixed() ? std::to_string(vi.shape[i].value)
                                                      : (vi.shape[i].param.empty() ? "?" : vi.shape[i].param));
  expected += "]";
  check(t.rank() == (int)vi.shape.size(), "input '", vi.name, "': expected shape ", expected, ", got ",
        shape_str(t.shape()));
  for (size_t i = 0; i < vi.shape.size(); ++i)
    check(!vi.shape[i].fixed() || vi.shape[i].value == t.shape()[i], "input '", vi.name, "': expected shape ",
          expected, ", got ", shape_str(t.shape()));
}
}  // namespace

TensorMap Executor::run(const TensorMap& feeds, const std::vector<std::string>& fetch_in, RunStats* stats) const {
  const Graph& g = model_.graph;
  std::unordered_map<std::string, Tensor> vals;
  int64_t live_bytes = 0;
  RunStats st;
  auto bytes_of = [](const Tensor& t) { return t.defined() ? t.numel() * (int64_t)dtype_size(t.dtype()) : 0; };
  auto hold = [&](const std::string& name, Tensor t) {
    auto it = vals.find(name);
    if (it != vals.end()) live_bytes -= bytes_of(it->second);
    live_bytes += bytes_of(t);
    vals[name] = std::move(t);
    st.peak_live_values = std::max<int64_t>(st.peak_live_values, (int64_t)vals.size());
    st.peak_live_bytes = std::max(st.peak_live_bytes, live_bytes);
  };
  auto release = [&](const std::string& name) {
    auto it = vals.find(name);
    if (it == vals.end()) return;
    live_bytes -= bytes_of(it->second);
    vals.erase(it);
  };
  for (auto& [k, _] : feeds)
    check(g.is_graph_input(k), "'", k, "' is not an input of the model");
  for (auto& vi : g.inputs) {
    auto it = feeds.find(vi.name);
    if (it == feeds.end()) {
      check(g.is_initializer(vi.name), "missing value for model input '", vi.name, "'");
      continue;
    }
    check_input(vi, it->second);
    Tensor t = it->second;
    for (auto& h : hooks_) h(nullptr, vi.name, t);
    hold(vi.name, std::move(t));
  }
  std::vector<std::string> fetch = fetch_in;
  if (fetch.empty())
    for (auto& o : g.outputs) fetch.push_back(o.name);
  std::set<std::string> keep(fetch.begin(), fetch.end());
  // Nodes the fetched values depend on (all nodes when a sub-graph could read outer values implicitly).
  std::vector<char> needed(g.nodes.size(), 1);
  bool subgraphs = std::any_of(g.nodes.begin(), g.nodes.end(), [](const Node& n) {
    return std::any_of(n.attrs.begin(), n.attrs.end(), [](const Attribute& a) { return a.g || !a.graphs.empty(); });
  });
  if (!fetch_in.empty() && !subgraphs) {
    std::unordered_map<std::string, size_t> producer;
    for (size_t i = 0; i < g.nodes.size(); ++i)
      for (auto& o : g.nodes[i].outputs) producer[o] = i;
    std::fill(needed.begin(), needed.end(), 0);
    std::vector<std::string> work(fetch.begin(), fetch.end());
    while (!work.empty()) {
      auto it = producer.find(work.back());
      work.pop_back();
      if (it == producer.end() || needed[it->second]) continue;
      needed[it->second] = 1;
      for (auto& in : g.nodes[it->second].inputs) work.push_back(in);
    }
  }
  // Remaining reads of each value, to free intermediates as early as possible.
  std::unordered_map<std::string, int> reads;
  for (size_t ni = 0; ni < g.nodes.size(); ++ni)
    if (needed[ni])
      for (auto& in : g.nodes[ni].inputs) ++reads[in];

  auto lookup = [&](const std::string& name) -> const Tensor* {
    auto it = vals.find(name);
    if (it != vals.end()) return &it->second;
    auto ii = g.initializers.find(name);
    if (ii != g.initializers.end()) return &ii->second;
    return nullptr;
  };
  std::vector<const Tensor*> ins;
  for (size_t ni = 0; ni < g.nodes.size(); ++ni) {
    if (!needed[ni]) continue;
    const Node& n = g.nodes[ni];
    ins.clear();
    for (auto& in : n.inputs) {
      if (in.empty()) {
        ins.push_back(nullptr);
        continue;
      }
      const Tensor* t = lookup(in);
      check(t != nullptr, n.describe(), ": input '", in, "' has no value");
      ins.push_back(t);
    }
    OpContext ctx{n, model_.opset(n.domain), ins};
    std::vector<Tensor> outs;
    try {
      outs = defs_[ni]->compute(ctx);
    } catch (const Unsupported& e) {
      std::string msg = e.what();
      if (msg.find(n.describe()) == std::string::npos) unsupported(n.describe(), ": ", msg);
      throw;
    } catch (const Error& e) {
      std::string msg = e.what();
      if (msg.find(n.describe()) == std::string::npos) fail(n.describe(), ": ", msg);
      throw;
    }
    for (size_t k = 0; k < n.outputs.size() && k < outs.size(); ++k) {
      if (n.outputs[k].empty()) continue;
      for (auto& h : hooks_) h(&n, n.outputs[k], outs[k]);
      hold(n.outputs[k], std::move(outs[k]));
    }
    for (auto& in : n.inputs)
      if (!in.empty() && --reads[in] == 0 && !keep.count(in)) release(in);
    for (auto& o : n.outputs)  // outputs nothing reads (e.g. an unused mask) go at once
      if (!o.empty() && reads[o] == 0 && !keep.count(o)) release(o);
  }
  if (stats) *stats = st;
  TensorMap result;
  for (auto& f : fetch) {
    const Tensor* t = lookup(f);
    check(t != nullptr, "requested value '", f, "' was not computed");
    result[f] = *t;
  }
  return result;
}

std::vector<Tensor> eval_node(const Node& n, int64_t opset, const std::vector<Tensor>& inputs, const OpRegistry& ops) {
  const OpDef* d = ops.find(n.domain, n.op_type, opset);
  check(d != nullptr, "unsupported op ", n.op_type, " at ", n.describe());
  std::vector<const Tensor*> ins;
  for (auto& t : inputs) ins.push_back(t.defined() ? &t : nullptr);
  OpContext ctx{n, opset, ins};
  return d->compute(ctx);
}

}  // namespace lowbit
