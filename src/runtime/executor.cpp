// Executor: validation, input checks, node-by-node execution with hooks, freeing values after last use; subgraphs
// (If/Loop/Scan) run through the same loop in a scope chained to the node's.
#include "runtime/executor.h"
#include "ir/fed_inputs.h"

#include <algorithm>
#include <chrono>
#include <limits>
#include <optional>
#include <set>
#include <unordered_map>

#include "ir/passes.h"
#include "kernels/dispatch.h"

namespace lowbit {

// Values alive in one graph run; lookups fall through to the graph's initializers, then to the enclosing scope.
struct Executor::Scope {
  Scope(const Graph& graph, const Scope* enclosing) : g(graph), parent(enclosing) {}
  const Graph& g;
  const Scope* parent;
  std::unordered_map<std::string, Tensor> vals;
  int64_t live_bytes = 0;
  RunStats st;

  static int64_t bytes_of(const Tensor& t) { return t.defined() ? t.numel() * (int64_t)dtype_size(t.dtype()) : 0; }
  const Tensor* lookup(const std::string& name) const {
    auto it = vals.find(name);
    if (it != vals.end()) return &it->second;
    auto ii = g.initializers.find(name);
    if (ii != g.initializers.end()) return &ii->second;
    return parent ? parent->lookup(name) : nullptr;
  }
  void hold(const std::string& name, Tensor t) {
    auto it = vals.find(name);
    if (it != vals.end()) live_bytes -= bytes_of(it->second);
    live_bytes += bytes_of(t);
    vals[name] = std::move(t);
    st.peak_live_values = std::max<int64_t>(st.peak_live_values, (int64_t)vals.size());
    st.peak_live_bytes = std::max(st.peak_live_bytes, live_bytes);
  }
  void release(const std::string& name) {
    auto it = vals.find(name);
    if (it == vals.end()) return;
    live_bytes -= bytes_of(it->second);
    vals.erase(it);
  }
};

class Executor::ScopeRunner : public SubgraphRunner {
 public:
  ScopeRunner(const Executor& ex, const Scope& scope) : ex_(ex), scope_(scope) {}
  std::vector<Tensor> run(const Graph& body, const std::vector<Tensor>& inputs) const override {
    return ex_.run_subgraph(body, scope_, inputs);
  }

 private:
  const Executor& ex_;
  const Scope& scope_;
};

namespace {
// The clamp a Relu or Clip node applies, when its bounds are constant floats.
std::optional<FusedClamp> constant_clamp(const Graph& g, const Node& a, int64_t opset) {
  const float inf = std::numeric_limits<float>::infinity();
  if (a.op_type == "Relu") return FusedClamp{0.f, inf};
  if (a.op_type != "Clip") return std::nullopt;
  FusedClamp fc{-inf, inf};
  if (opset < 11) {
    fc = {a.attr_float("min", -std::numeric_limits<float>::max()), a.attr_float("max", std::numeric_limits<float>::max())};
  } else {
    if (a.inputs.size() > 3) return std::nullopt;
    for (size_t k = 1; k < a.inputs.size(); ++k) {
      if (a.inputs[k].empty()) continue;
      auto ii = g.initializers.find(a.inputs[k]);
      if (ii == g.initializers.end() || ii->second.dtype() != DType::Float32 || ii->second.numel() != 1)
        return std::nullopt;
      (k == 1 ? fc.lo : fc.hi) = ii->second.data<float>()[0];
    }
  }
  if (!(fc.lo <= fc.hi)) return std::nullopt;
  return fc;
}
}  // namespace

// Clamps to fold: node i (a kernel that fuses them) whose first output has exactly one reader j, a Relu or a Clip
// with constant float bounds, and is no graph output nor read by a subgraph.
void Executor::plan_folds(const Graph& g, Plan& p) const {
  std::unordered_map<std::string, std::vector<size_t>> readers;
  std::set<std::string> not_foldable;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    for (auto& in : g.nodes[i].inputs) readers[in].push_back(i);
    for (auto& in : p.implicit[i]) not_foldable.insert(in);
  }
  for (auto& o : g.outputs) not_foldable.insert(o.name);
  p.fused_next.assign(g.nodes.size(), -1);
  p.clamps.assign(g.nodes.size(), FusedClamp{});
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const Node& n = g.nodes[i];
    if (!p.defs[i] || !p.defs[i]->fuses_clamp || n.outputs.empty() || not_foldable.count(n.outputs[0])) continue;
    auto it = readers.find(n.outputs[0]);
    if (it == readers.end() || it->second.size() != 1) continue;
    size_t j = it->second[0];
    const Node& a = g.nodes[j];
    if (!a.domain.empty() || a.inputs.empty() || a.inputs[0] != n.outputs[0] || a.outputs.size() != 1) continue;
    auto fc = constant_clamp(g, a, model_.opset(a.domain));
    if (!fc) continue;
    p.fused_next[i] = (int64_t)j;
    p.clamps[i] = *fc;
  }
}

void Executor::plan_graph(const Graph& g, std::map<std::string, std::string>& missing) {
  Plan& p = plans_[&g];
  for (auto& n : g.nodes) {
    const OpDef* d = ops_.find(n.domain, n.op_type, model_.opset(n.domain));
    p.defs.push_back(d);
    p.implicit.push_back(implicit_inputs(n));
    p.caches.push_back(std::make_unique<KernelCache>());
    std::string key = n.domain.empty() ? n.op_type : n.domain + "." + n.op_type;
    if (!d && !missing.count(key)) {
      std::string why = ops_.find(n.domain, n.op_type, 1000) ? " (opset " + std::to_string(model_.opset(n.domain)) + " too old)" : "";
      missing[key] = "'" + (n.name.empty() ? n.outputs.at(0) : n.name) + "'" + why;
    }
    for (auto& a : n.attrs) {
      if (a.g) plan_graph(*a.g, missing);
      for (auto& sg : a.graphs) plan_graph(*sg, missing);
    }
  }
  std::unordered_map<std::string, bool> aware_readers;  // value -> every reader is layout-aware
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    bool aware = p.defs[i] && p.defs[i]->layout_aware;
    for (auto& in : g.nodes[i].inputs) {
      auto [it, fresh] = aware_readers.emplace(in, aware);
      if (!fresh) it->second = it->second && aware;
    }
    for (auto& in : p.implicit[i]) aware_readers[in] = false;
  }
  for (auto& o : g.outputs) aware_readers[o.name] = false;
  plan_folds(g, p);
  for (auto& n : g.nodes) {
    bool ok = !n.outputs.empty() && !n.outputs[0].empty();
    for (auto& o : n.outputs) {
      auto it = aware_readers.find(o);
      if (!o.empty() && it != aware_readers.end() && !it->second) ok = false;
    }
    p.channels_last_ok.push_back(ok);
  }
}

Executor::Executor(const Model& model, const OpRegistry& ops) : model_(model), ops_(ops) {
  topological_sort(model_.graph);
  std::map<std::string, std::string> missing;  // op type -> first node
  plan_graph(model_.graph, missing);
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

std::vector<const ValueInfo*> Executor::required_inputs() const { return fed_inputs(model_.graph); }

namespace {
void check_input(const ValueInfo& vi, const Tensor& t, const std::string& what) {
  if (vi.dtype != DType::Undefined)
    check(t.dtype() == vi.dtype, what, " '", vi.name, "': expected dtype ", dtype_name(vi.dtype), ", got ",
          dtype_name(t.dtype()));
  if (!vi.has_shape) return;
  std::string expected = "[";
  for (size_t i = 0; i < vi.shape.size(); ++i)
    expected += (i ? "," : "") + (vi.shape[i].fixed() ? std::to_string(vi.shape[i].value)
                                                      : (vi.shape[i].param.empty() ? "?" : vi.shape[i].param));
  expected += "]";
  check(t.rank() == (int)vi.shape.size(), what, " '", vi.name, "': expected shape ", expected, ", got ",
        shape_str(t.shape()));
  for (size_t i = 0; i < vi.shape.size(); ++i)
    check(!vi.shape[i].fixed() || vi.shape[i].value == t.shape()[i], what, " '", vi.name, "': expected shape ",
          expected, ", got ", shape_str(t.shape()));
}
}  // namespace

void Executor::exec(const Graph& g, Scope& s, const std::vector<char>& needed, const std::set<std::string>& keep,
                    bool top, std::vector<double>* node_seconds) const {
  const Plan& plan = plans_.at(&g);
  // Remaining reads of each value (explicit and implicit), to free intermediates as early as possible.
  std::unordered_map<std::string, int> reads;
  for (size_t ni = 0; ni < g.nodes.size(); ++ni)
    if (needed[ni]) {
      for (auto& in : g.nodes[ni].inputs) ++reads[in];
      for (auto& in : plan.implicit[ni]) ++reads[in];
    }
  ScopeRunner runner(*this, s);
  std::vector<const Tensor*> ins;
  std::vector<Tensor> plain_copies;
  auto seen = [&](const std::string& v) { return top && watched(v); };  // a hook will see this value
  auto seen_plain = [&](const std::string& v) { return top && watched_plain(v); };
  std::vector<char> folded(g.nodes.size(), 0);
  auto done = [&](const std::string& in) {  // one read of `in` is over: free it after its last
    if (!in.empty() && --reads[in] == 0 && !keep.count(in)) s.release(in);
  };
  for (size_t ni = 0; ni < g.nodes.size(); ++ni) {
    if (!needed[ni] || folded[ni]) continue;
    const Node& n = g.nodes[ni];
    const OpDef* def = plan.defs[ni];
    ins.clear();
    plain_copies.clear();
    plain_copies.reserve(n.inputs.size());
    for (auto& in : n.inputs) {
      if (in.empty()) {
        ins.push_back(nullptr);
        continue;
      }
      const Tensor* t = s.lookup(in);
      check(t != nullptr, n.describe(), ": input '", in, "' has no value");
      if (t->layout() != Layout::Plain && !def->layout_aware) {
        // A kernel that knows only the plain layout: convert once, in this scope when the value lives here.
        Tensor p = t->to_plain();
        if (s.vals.count(in)) {
          s.hold(in, std::move(p));
          t = s.lookup(in);
        } else {
          plain_copies.push_back(std::move(p));
          t = &plain_copies.back();
        }
      }
      ins.push_back(t);
    }
    OpContext ctx{n, model_.opset(n.domain), ins, &runner, plan.caches[ni].get()};
    ctx.channels_last_out = plan.channels_last_ok[ni] && std::none_of(n.outputs.begin(), n.outputs.end(), [&](auto& o) {
                              return keep.count(o) || seen_plain(o);
                            });
    // Fold the clamp that alone reads this output, unless a hook or the caller wants the value before it.
    int64_t fj = plan.fused_next[ni];
    const Node* fused = nullptr;
    if (fj >= 0 && needed[(size_t)fj] && !seen(n.outputs[0]) && !keep.count(n.outputs[0]) && fast_kernels_enabled()) {
      fused = &g.nodes[(size_t)fj];
      ctx.fused_clamp = &plan.clamps[ni];
      ctx.channels_last_out = plan.channels_last_ok[(size_t)fj] && !keep.count(fused->outputs[0]) &&
                              !seen_plain(fused->outputs[0]);
    }
    std::vector<Tensor> outs;
    auto t0 = node_seconds ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point{};
    try {
      outs = def->compute(ctx);
      if (node_seconds)
        (*node_seconds)[ni] += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    } catch (const Unsupported& e) {
      std::string msg = e.what();
      if (msg.find(n.describe()) == std::string::npos) unsupported(n.describe(), ": ", msg);
      throw;
    } catch (const Error& e) {
      std::string msg = e.what();
      if (msg.find(n.describe()) == std::string::npos) fail(n.describe(), ": ", msg);
      throw;
    }
    if (fused) {
      // The clamp's node is done: its output is this node's first one, its reads are this node's.
      folded[(size_t)fj] = 1;
      Tensor& v = outs.at(0);
      if (v.layout() != Layout::Plain && !ctx.channels_last_out) v = v.to_plain();
      if (top) {
        ++s.st.folded_clamps;
        if (v.layout() != Layout::Plain) ++s.st.channels_last_outputs;
        if (seen(fused->outputs[0])) call_hooks(fused, fused->outputs[0], v);
      }
      s.hold(fused->outputs[0], std::move(v));
      for (auto& in : fused->inputs) done(in);  // the first is this node's own output, never held
      for (auto& in : n.inputs) done(in);
      for (auto& in : plan.implicit[ni]) done(in);
      continue;
    }
    for (size_t k = 0; k < n.outputs.size() && k < outs.size(); ++k) {
      if (n.outputs[k].empty()) continue;
      if (outs[k].layout() != Layout::Plain && !ctx.channels_last_out) outs[k] = outs[k].to_plain();
      if (top && outs[k].layout() != Layout::Plain) ++s.st.channels_last_outputs;
      if (seen(n.outputs[k])) call_hooks(&n, n.outputs[k], outs[k]);
      s.hold(n.outputs[k], std::move(outs[k]));
    }
    for (auto& in : n.inputs) done(in);
    for (auto& in : plan.implicit[ni]) done(in);
    for (auto& o : n.outputs)  // outputs nothing reads (e.g. an unused mask) go at once
      if (!o.empty() && reads[o] == 0 && !keep.count(o)) s.release(o);
  }
}

bool Executor::watched(const std::string& value) const {
  for (auto& h : hooks_)
    if (!h.only || h.only->count(value)) return true;
  return false;
}

bool Executor::watched_plain(const std::string& value) const {
  for (auto& h : hooks_)
    if (!h.any_layout && (!h.only || h.only->count(value))) return true;
  return false;
}

void Executor::call_hooks(const Node* producer, const std::string& value, Tensor& t) const {
  if (t.layout() != Layout::Plain && watched_plain(value)) t = t.to_plain();
  for (auto& h : hooks_)
    if (!h.only || h.only->count(value)) h.fn(producer, value, t);
}

std::vector<Tensor> Executor::run_subgraph(const Graph& body, const Scope& parent,
                                           const std::vector<Tensor>& inputs) const {
  check(inputs.size() == body.inputs.size(), "subgraph '", body.name, "' takes ", body.inputs.size(),
        " inputs, given ", inputs.size());
  Scope s(body, &parent);
  for (size_t i = 0; i < inputs.size(); ++i) {
    check_input(body.inputs[i], inputs[i], "subgraph '" + body.name + "' input");
    s.hold(body.inputs[i].name, inputs[i]);
  }
  std::set<std::string> keep;
  for (auto& o : body.outputs) keep.insert(o.name);
  exec(body, s, std::vector<char>(body.nodes.size(), 1), keep, false, nullptr);
  std::vector<Tensor> outs;
  for (auto& o : body.outputs) {
    const Tensor* t = s.lookup(o.name);
    check(t != nullptr, "subgraph '", body.name, "': output '", o.name, "' was not computed");
    outs.push_back(t->to_plain());
  }
  return outs;
}

TensorMap Executor::run(const TensorMap& feeds, const std::vector<std::string>& fetch_in, RunStats* stats) const {
  const Graph& g = model_.graph;
  Scope s(g, nullptr);
  for (auto& [k, _] : feeds)
    check(g.is_graph_input(k), "'", k, "' is not an input of the model");
  for (auto& vi : g.inputs) {
    auto it = feeds.find(vi.name);
    if (it == feeds.end()) {
      check(g.is_initializer(vi.name), "missing value for model input '", vi.name, "'");
      continue;
    }
    check_input(vi, it->second, "input");
    Tensor t = it->second;
    if (watched(vi.name)) call_hooks(nullptr, vi.name, t);
    s.hold(vi.name, std::move(t));
  }
  std::vector<std::string> fetch = fetch_in;
  if (fetch.empty())
    for (auto& o : g.outputs) fetch.push_back(o.name);
  std::set<std::string> keep(fetch.begin(), fetch.end());
  // Nodes the fetched values depend on, through explicit and implicit (subgraph) inputs.
  std::vector<char> needed(g.nodes.size(), 1);
  if (!fetch_in.empty()) {
    const Plan& plan = plans_.at(&g);
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
      for (auto& in : plan.implicit[it->second]) work.push_back(in);
    }
  }
  std::vector<double> seconds(profile_ ? g.nodes.size() : 0, 0.0);
  exec(g, s, needed, keep, true, profile_ ? &seconds : nullptr);
  if (stats) {
    *stats = s.st;
    stats->node_seconds = std::move(seconds);
  }
  TensorMap result;
  for (auto& f : fetch) {
    const Tensor* t = s.lookup(f);
    check(t != nullptr, "requested value '", f, "' was not computed");
    result[f] = t->to_plain();
  }
  return result;
}

std::vector<Tensor> eval_node(const Node& n, int64_t opset, const std::vector<Tensor>& inputs, const OpRegistry& ops) {
  const OpDef* d = ops.find(n.domain, n.op_type, opset);
  check(d != nullptr, "unsupported op ", n.op_type, " at ", n.describe());
  std::vector<const Tensor*> ins;
  for (auto& t : inputs) ins.push_back(t.defined() ? &t : nullptr);
  OpContext ctx{n, opset, ins};
  auto outs = d->compute(ctx);
  for (auto& o : outs) o = o.to_plain();
  return outs;
}

}  // namespace lowbit
