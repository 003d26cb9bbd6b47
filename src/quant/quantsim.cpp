// Quant-sim transform: placement, calibration, and QDQ graph construction.
#include "quant/quantsim.h"
#include "ir/fed_inputs.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <unordered_map>

#include "ir/builder.h"
#include "kernels/elementwise.h"
#include "ir/passes.h"
#include "quant/range.h"
#include "runtime/executor.h"

namespace lowbit::quant {

namespace {

// Ops that clamp their input (what BN-based ranges follow through).
const std::set<std::string> kClampOps = {"Relu", "Clip"};

bool listed(const std::vector<std::string>& ops, const std::string& op) {
  return std::find(ops.begin(), ops.end(), op) != ops.end();
}

bool is_weighted_op(const std::string& op) {
  return op == "Conv" || op == "ConvTranspose" || op == "Gemm" || op == "MatMul";
}

bool is_float_value(const Graph& g, const GraphIndex& ix, const std::string& v) {
  if (v.empty() || g.is_initializer(v)) return false;
  const ValueInfo* vi = ix.value_info(v);
  return vi && vi->dtype == DType::Float32;
}

int weight_axis(const Node& n, int rank) {
  if (n.op_type == "Conv") return 0;
  if (n.op_type == "ConvTranspose") return 1;
  if (n.op_type == "Gemm") return n.attr_int("transB", 0) ? 0 : 1;
  return rank - 1;  // MatMul: [.., K, N], output features last
}

// Values inside LayerNorm and GELU as opset < 17 exporters decompose them; like a fused activation, only the
// pattern's output gets a quantizer (runtimes compute these patterns in float or as one kernel).
//   LayerNorm: m = ReduceMean(x); d = Sub(x, m); v = ReduceMean(Pow(d, c)); s = Sqrt(Add(v, eps)); n = Div(d, s)
//              [; Mul(n, gamma) [; Add(., beta)]]
//   GELU:      Mul(Mul(x, Add(Erf(Div(x, c)), c1)), c2)   (or the two Muls swapped)
std::set<std::string> decomposed_interiors(const Graph& g, const GraphIndex& ix) {
  std::set<std::string> inner;
  auto only_reader = [&](const std::string& v) -> const Node* {
    auto& r = ix.consumers(v);
    return r.size() == 1 && !g.is_graph_output(v) ? &g.nodes[(size_t)r[0]] : nullptr;
  };
  auto reader_of_type = [&](const std::string& v, const char* op) -> const Node* {
    for (int i : ix.consumers(v))
      if (g.nodes[(size_t)i].op_type == op) return &g.nodes[(size_t)i];
    return nullptr;
  };
  auto is_op = [](const Node* n, const char* op) { return n && n->op_type == op; };
  for (auto& r1 : g.nodes) {
    if (r1.op_type != "ReduceMean" || r1.inputs.empty()) continue;
    const std::string& x = r1.inputs[0];
    const Node* sub = reader_of_type(r1.outputs[0], "Sub");
    if (!sub || sub->inputs.size() != 2 || sub->inputs[0] != x || sub->inputs[1] != r1.outputs[0]) continue;
    const Node* pw = reader_of_type(sub->outputs[0], "Pow");
    const Node* r2 = pw ? only_reader(pw->outputs[0]) : nullptr;
    const Node* add = is_op(r2, "ReduceMean") ? only_reader(r2->outputs[0]) : nullptr;
    const Node* sq = is_op(add, "Add") ? only_reader(add->outputs[0]) : nullptr;
    const Node* div = is_op(sq, "Sqrt") ? only_reader(sq->outputs[0]) : nullptr;
    if (!is_op(div, "Div") || div->inputs[0] != sub->outputs[0]) continue;
    for (const Node* n : {&r1, sub, pw, r2, add, sq}) inner.insert(n->outputs[0]);
    const Node* mul = only_reader(div->outputs[0]);
    if (is_op(mul, "Mul")) {
      inner.insert(div->outputs[0]);
      const Node* shift = only_reader(mul->outputs[0]);
      if (is_op(shift, "Add") && std::any_of(shift->inputs.begin(), shift->inputs.end(), [&](auto& i) { return g.is_initializer(i); }))
        inner.insert(mul->outputs[0]);
    }
  }
  for (auto& erf : g.nodes) {
    if (erf.op_type != "Erf") continue;
    int dp = ix.producer(erf.inputs[0]);
    if (dp < 0 || g.nodes[(size_t)dp].op_type != "Div") continue;
    const Node& dv = g.nodes[(size_t)dp];
    const std::string& x = dv.inputs[0];
    const Node* a = only_reader(erf.outputs[0]);
    const Node* m1 = is_op(a, "Add") ? only_reader(a->outputs[0]) : nullptr;
    if (!is_op(m1, "Mul")) continue;
    bool reads_x = std::find(m1->inputs.begin(), m1->inputs.end(), x) != m1->inputs.end();
    const Node* m2 = only_reader(m1->outputs[0]);
    if (reads_x && is_op(m2, "Mul")) {  // x * (1 + erf(x / c)) * 0.5
      for (const Node* n : {&dv, &erf, a, m1}) inner.insert(n->outputs[0]);
      continue;
    }
    // 0.5 * x first: m1 = Mul(Mul(x, 0.5), 1 + erf)
    int hp = -1;
    for (auto& in : m1->inputs)
      if (in != a->outputs[0]) hp = ix.producer(in);
    if (hp >= 0 && g.nodes[(size_t)hp].op_type == "Mul" &&
        std::find(g.nodes[(size_t)hp].inputs.begin(), g.nodes[(size_t)hp].inputs.end(), x) != g.nodes[(size_t)hp].inputs.end())
      for (const Node* n : {&dv, &erf, a, &g.nodes[(size_t)hp]}) inner.insert(n->outputs[0]);
  }
  return inner;
}

}  // namespace

QuantSimPlan plan_quantizers(const Model& m, const QuantConfig& cfg) {
  const Graph& g = m.graph;
  // Validate overrides against the model.
  for (auto& o : cfg.overrides) {
    if (!o.node.empty())
      check(std::any_of(g.nodes.begin(), g.nodes.end(), [&](auto& n) { return n.name == o.node; }),
            "the quantization config names node '", o.node, "', which the model does not have");
    if (!o.op_type.empty())
      check(std::any_of(g.nodes.begin(), g.nodes.end(), [&](auto& n) { return n.op_type == o.op_type; }),
            "the quantization config names op type '", o.op_type, "', which no node of the model has");
    if (!o.tensor.empty())
      check(g.producer(o.tensor) >= 0 || g.is_graph_input(o.tensor),
            "the quantization config names tensor '", o.tensor, "', which the model does not have");
  }
  auto node_override = [&](const Node& n) {
    std::vector<const Override*> r;
    for (auto& o : cfg.overrides)
      if ((!o.node.empty() && o.node == n.name) || (!o.op_type.empty() && o.op_type == n.op_type)) r.push_back(&o);
    return r;
  };
  const Placement& place = cfg.placement;
  auto skipped = [&](const Node& n) {
    if (listed(place.float_ops, n.op_type)) return true;
    for (auto* o : node_override(n))
      if (o->skip) return true;
    return false;
  };
  check(cfg.activations.spec.granularity == Granularity::PerTensor,
        "activation quantizers must be per tensor (config key activations.granularity); per-channel and per-group "
        "activation quantization is not supported");
  const GraphIndex ix(g);
  std::set<std::string> names;
  for (auto& n : g.nodes)
    check(!n.name.empty() && names.insert(n.name).second, "plan_quantizers: node names must be unique and non-empty ('",
          n.name, "'); run prepare_for_quantization first");
  QuantSimPlan plan;
  plan.placement = place;
  std::set<std::string> planned;
  auto add_act = [&](const std::string& t, const Node* producer, bool dynamic) {
    if (planned.count(t) || !is_float_value(g, ix, t)) return;
    TensorQuant q = cfg.activations;
    if (producer)
      for (auto* o : node_override(*producer)) {
        if (o->activation_bits) q.spec.grid.bits = *o->activation_bits;
        if (o->range) q.range = *o->range;
      }
    for (auto& o : cfg.overrides)
      if (o.tensor == t) {
        if (o.activation_bits) q.spec.grid.bits = *o.activation_bits;
        if (o.range) q.range = *o.range;
      }
    planned.insert(t);
    plan.acts.push_back({t, q, dynamic, {}});
  };
  bool acts_on = cfg.mode == Mode::Static;
  const std::set<std::string> interior = decomposed_interiors(g, ix);
  bool between_kernels = place.activations == ActPlacement::Outputs;
  if (acts_on && cfg.quantize_model_input && between_kernels)
    for (auto& in : g.inputs) add_act(in.name, nullptr, false);
  for (auto& n : g.nodes) {
    if (skipped(n)) continue;
    bool has_weight = (n.op_type == "Conv" || n.op_type == "ConvTranspose" || n.op_type == "Gemm" || n.op_type == "MatMul") &&
                      n.domain.empty() && n.inputs.size() > 1 && g.is_initializer(n.inputs[1]) &&
                      g.initializers.at(n.inputs[1]).dtype() == DType::Float32;
    if (has_weight) {
      const Tensor& w = g.initializers.at(n.inputs[1]);
      TensorQuant q = cfg.weights;
      for (auto* o : node_override(n))
        if (o->weight_bits) q.spec.grid.bits = *o->weight_bits;
      if (q.spec.granularity != Granularity::PerTensor) {
        if (w.rank() < 2) q.spec.granularity = Granularity::PerTensor;
        else q.spec.axis = weight_axis(n, w.rank());
      }
      // Grouped ConvTranspose: the weight is [C_in, C_out/g, k...] and output channel grp * C_out/g + j reads the
      // rows ci of group grp at column j, so axis 1 alone would share one scale across the g groups. One scale per
      // output channel is per-group along axis 1 with blocks of (C_in/g) * prod(k): slice j * g + grp.
      int64_t groups = n.attr_int("group", 1);
      if (n.op_type == "ConvTranspose" && q.spec.granularity == Granularity::PerChannel && groups > 1 && w.rank() >= 2) {
        check(w.dim(0) % groups == 0, n.describe(), ": weight dimension 0 (", w.dim(0), ") is not a multiple of group ", groups);
        q.spec.granularity = Granularity::PerGroup;
        q.spec.group_size = w.numel() / w.dim(1) / groups;
      }
      plan.weights.push_back({n.name, n.inputs[1], q, {}});
      if (cfg.mode == Mode::Dynamic) add_act(n.inputs[0], nullptr, true);
    }
    if (!acts_on) continue;
    if (!between_kernels) {  // academic: the layer's input only
      if (has_weight) add_act(n.inputs[0], nullptr, false);
      continue;
    }
    if (listed(place.pass_through, n.op_type)) continue;
    for (auto& out : n.outputs) {
      auto& readers = ix.consumers(out);
      bool only_reader = readers.size() == 1 && !g.is_graph_output(out);
      bool fused = only_reader && listed(place.fused_activations, g.nodes[readers[0]].op_type) &&
                   !skipped(g.nodes[readers[0]]);
      // The residual Add accumulates into the layer's 32-bit output (TensorRT): no quantizer between them.
      bool into_add = place.fuse_add_into_conv && only_reader && is_weighted_op(n.op_type) &&
                      g.nodes[readers[0]].op_type == "Add" && !skipped(g.nodes[readers[0]]);
      if (!fused && !into_add && !interior.count(out)) add_act(out, &n, false);
    }
  }
  return plan;
}

namespace {

// The keys of a map: the values a calibration hook observes (everything else may be fused away or kept in the
// executor's channels-last layout).
template <typename Map>
std::vector<std::string> watched_names(const Map& m) {
  std::vector<std::string> v;
  for (auto& [name, _] : m) v.push_back(name);
  return v;
}

struct Observer {
  RangeMethod method;
  MinMaxObserver minmax;
  EmaMinMaxObserver ema;
  HistogramObserver hist;
  explicit Observer(const TensorQuant& q) : method(q.range), ema(q.ema_momentum), hist(2048) {}
  void observe(const float* x, int64_t n) {
    if (method == RangeMethod::MinMax || method == RangeMethod::CrossEntropy || method == RangeMethod::Bn ||
        method == RangeMethod::Kl)
      minmax.observe(x, n);
    else if (method == RangeMethod::Ema) ema.observe(x, n);
    else hist.observe(x, n);
  }
  // The smallest value seen (EMA: its running minimum), which settles "signed": "auto".
  float data_min() const {
    if (method == RangeMethod::Ema) return ema.range().first;
    if (method == RangeMethod::Percentile || method == RangeMethod::Mse) return hist.lo();
    return minmax.range().first;
  }
  std::pair<float, float> range(const TensorQuant& q) const {
    switch (method) {
      // Cross-entropy and KL: the first pass's min-max, which their second pass (calibrate) refines.
      case RangeMethod::MinMax: case RangeMethod::CrossEntropy: case RangeMethod::Bn: case RangeMethod::Kl:
        return minmax.range();
      case RangeMethod::Ema: return ema.range();
      case RangeMethod::Percentile: return hist.percentile_range(q.percentile);
      case RangeMethod::Mse: return hist.mse_range(q.spec);
    }
    return {0, 0};
  }
};

}  // namespace

namespace {
// BN-based range of `t`: directly after a folded BN, or after the ReLU/Clip that follows one (alpha = 6).
std::optional<std::pair<float, float>> bn_range(const Graph& g, const std::string& t,
                                                const std::map<std::string, BnParams>& bns) {
  const double alpha = 6;
  std::string src = t;
  double clip_lo = -INFINITY, clip_hi = INFINITY;
  int p = g.producer(t);
  if (!bns.count(t) && p >= 0 && kClampOps.count(g.nodes[(size_t)p].op_type)) {
    const Node& act = g.nodes[(size_t)p];
    src = act.inputs[0];
    if (auto r = clamp_range(g, act)) {  // bounds computed at run time only narrow the range: keep it unclamped
      clip_lo = r->lo;
      clip_hi = r->hi;
    }
  }
  auto it = bns.find(src);
  if (it == bns.end()) return std::nullopt;
  double lo = INFINITY, hi = -INFINITY;
  for (size_t c = 0; c < it->second.beta.size(); ++c) {
    double b = it->second.beta[c], gm = std::abs((double)it->second.gamma[c]);
    lo = std::min(lo, b - alpha * gm);
    hi = std::max(hi, b + alpha * gm);
  }
  lo = std::clamp(lo, clip_lo, clip_hi);
  hi = std::clamp(hi, clip_lo, clip_hi);
  return std::make_pair((float)lo, (float)std::max(hi, lo));
}
}  // namespace

void calibrate(const Model& m, QuantSimPlan& plan, const BatchSource& next, const std::function<void(int64_t)>& progress,
               const std::function<void()>& rewind, const std::map<std::string, BnParams>& batch_norms) {
  const std::string input = single_fed_input(m.graph, "calibration from single tensors needs a single-input model; feed each input by name");
  Tensor batch;
  FeedSource feeds = [&](std::map<std::string, Tensor>& f) {
    if (!next(batch)) return false;
    f.clear();
    f[input] = batch;
    return true;
  };
  calibrate(m, plan, feeds, progress, rewind, batch_norms);
}

void calibrate(const Model& m, QuantSimPlan& plan, const FeedSource& next, const std::function<void(int64_t)>& progress,
               const std::function<void()>& rewind, const std::map<std::string, BnParams>& batch_norms) {
  std::map<std::string, size_t> index;
  std::vector<Observer> obs;
  for (size_t i = 0; i < plan.acts.size(); ++i)
    if (!plan.acts[i].dynamic) {
      index[plan.acts[i].tensor] = obs.size();
      obs.emplace_back(plan.acts[i].q);
    }
  if (obs.empty()) return;
  // Data-free when every static quantizer is BN-based and has a BatchNormalization in front.
  std::vector<std::string> uncovered;
  for (auto& a : plan.acts)
    if (!a.dynamic && (a.q.range != RangeMethod::Bn || !bn_range(m.graph, a.tensor, batch_norms))) uncovered.push_back(a.tensor);
  Executor ex(m);
  int64_t batch_no = 0, samples = 0;
  ex.add_hook([&](const Node*, const std::string& name, Tensor& v) {
    auto it = index.find(name);
    if (it == index.end()) return;
    check(v.dtype() == DType::Float32, "calibration: tensor '", name, "' is ", dtype_name(v.dtype()), ", not float32");
    const float* p = static_cast<const float*>(v.storage());  // element-wise only: any layout will do
    int64_t n = v.numel();
    float lo, hi;
    if (!minmax_f32(p, n, lo, hi))  // vectorised check; the message loop runs on failure only
      for (int64_t i = 0; i < n; ++i)
        check(std::isfinite(p[i]), "calibration: tensor '", name, "' holds ", std::isnan(p[i]) ? "NaN" : "Inf",
              " in batch ", batch_no, " (samples ", samples, " onwards)");
    obs[it->second].observe(p, v.numel());
  }, watched_names(index), /*any_layout=*/true);
  std::map<std::string, Tensor> batch;
  while (next(batch)) {
    ex.run(batch);
    int64_t rows = 1;
    for (auto& [_, t] : batch)
      if (t.rank() > 0) {
        rows = t.dim(0);
        break;
      }
    samples += rows;
    ++batch_no;
    if (progress) progress(samples);
  }
  if (batch_no == 0) {
    bool any_bn = std::any_of(plan.acts.begin(), plan.acts.end(), [](auto& a) { return a.q.range == RangeMethod::Bn; });
    check(any_bn, "calibration: the dataset is empty");
    std::string list;
    for (size_t i = 0; i < uncovered.size() && i < 8; ++i) list += (i ? ", " : "") + uncovered[i];
    check(uncovered.empty(), "calibration: no data, and ", uncovered.size(), " quantizer", uncovered.size() > 1 ? "s" : "",
          " cannot be set without it (BN-based ranges need a BatchNormalization in front): ", list,
          uncovered.size() > 8 ? ", ..." : "");
  }
  // "signed": "auto" is settled from the data before any range search, which depends on the grid.
  for (auto& a : plan.acts) {
    if (a.dynamic || !a.q.signed_auto) continue;
    auto b = a.q.range == RangeMethod::Bn ? bn_range(m.graph, a.tensor, batch_norms) : std::nullopt;
    resolve_auto_sign(a.q, b ? b->first : obs[index.at(a.tensor)].data_min());
  }
  // Second pass for cross-entropy ranges: every candidate range of every such tensor is scored at once.
  std::map<std::string, CrossEntropySearch> ce;
  for (auto& a : plan.acts)
    if (!a.dynamic && a.q.range == RangeMethod::CrossEntropy) {
      auto [lo, hi] = obs[index.at(a.tensor)].range(a.q);
      ce.emplace(a.tensor, CrossEntropySearch(lo, hi, a.q.spec));
    }
  // ... and for KL ranges: a histogram of |x| over [0, max|x| of the first pass].
  std::map<std::string, AbsHistogram> kl;
  for (auto& a : plan.acts)
    if (!a.dynamic && a.q.range == RangeMethod::Kl && batch_no > 0) {
      auto [lo, hi] = obs[index.at(a.tensor)].range(a.q);
      kl.emplace(a.tensor, AbsHistogram(std::max(std::fabs(lo), std::fabs(hi))));
    }
  if (!ce.empty() || !kl.empty()) {
    check((bool)rewind, "calibration: ", ce.empty() ? "KL" : "cross-entropy",
          " ranges need a second pass over the data (no rewind given)");
    rewind();
    Executor ex2(m);
    ex2.add_hook([&](const Node*, const std::string& name, Tensor& v) {
      if (auto it = kl.find(name); it != kl.end()) it->second.observe(v.data<float>(), v.numel());
      auto it = ce.find(name);
      if (it == ce.end()) return;
      check(v.rank() == 2, "cross-entropy range: tensor '", name, "' has shape ", shape_str(v.shape()),
            "; it needs [batch, classes] logits");
      it->second.add(v.data<float>(), v.dim(0), v.dim(1));
    }, [&] {
      std::vector<std::string> w = watched_names(kl);
      for (auto& [name, _] : ce) w.push_back(name);
      return w;
    }());
    while (next(batch)) ex2.run(batch);
  }
  for (auto& a : plan.acts) {
    if (a.dynamic) continue;
    std::pair<float, float> r;
    if (ce.count(a.tensor)) r = ce.at(a.tensor).best();
    else if (kl.count(a.tensor)) {
      auto [lo, hi] = obs[index.at(a.tensor)].range(a.q);
      r = kl_range(kl.at(a.tensor), lo, hi, a.q.spec);
    }
    else if (auto b = a.q.range == RangeMethod::Bn ? bn_range(m.graph, a.tensor, batch_norms) : std::nullopt) r = *b;
    else r = obs[index.at(a.tensor)].range(a.q);
    a.enc = make_encoding(a.q.spec, {1}, {r});
  }
}

void compute_weight_encodings(const Model& m, QuantSimPlan& plan) {
  for (auto& w : plan.weights) {
    const Tensor& t = m.graph.initializers.at(w.tensor);
    const float* x = t.data<float>();
    std::vector<std::pair<float, float>> ranges;
    if (w.q.range == RangeMethod::Mse) {
      auto idx = slice_index(t.shape(), w.q.spec);
      std::vector<std::vector<float>> slices((size_t)num_slices(t.shape(), w.q.spec));
      for (size_t i = 0; i < idx.size(); ++i) slices[(size_t)idx[i]].push_back(x[i]);
      for (auto& s : slices) ranges.push_back(mse_range_direct(s, w.q.spec));
    } else {
      ranges = minmax_per_slice(x, t.shape(), w.q.spec);  // weights: percentile/KL/EMA make no sense, min-max
    }
    try {
      w.enc = make_encoding(w.q.spec, t.shape(), ranges);
    } catch (const Error& e) {
      fail("weight '", w.tensor, "' of node '", w.node, "': ", e.what());
    }
  }
}

void share_concat_encodings(const Model& m, QuantSimPlan& plan) {
  std::map<std::string, ActQuantizer*> by_tensor;
  for (auto& a : plan.acts) by_tensor[a.tensor] = &a;
  for (auto& n : m.graph.nodes) {
    if (n.op_type != "Concat" || !by_tensor.count(n.outputs[0])) continue;
    const ActQuantizer& out = *by_tensor[n.outputs[0]];
    for (auto& in : n.inputs)
      if (auto it = by_tensor.find(in); it != by_tensor.end() && !it->second->dynamic) {
        it->second->enc = out.enc;
        it->second->q = out.q;
      }
  }
}

std::vector<std::string> float_ops(const Model& m, const QuantSimPlan& plan) {
  const Graph& g = m.graph;
  const GraphIndex ix(g);
  std::set<std::string> covered, weighted;
  for (auto& a : plan.acts) covered.insert(a.tensor);
  for (auto& w : plan.weights) weighted.insert(w.node);
  // Values on a quantized grid: quantizer outputs, and what pass-through ops derive from them.
  const Placement& place = plan.placement;
  for (auto& n : g.nodes)
    if (listed(place.pass_through, n.op_type) && !n.inputs.empty() && covered.count(n.inputs[0]))
      for (auto& o : n.outputs) covered.insert(o);
  std::vector<std::string> r;
  for (auto& n : g.nodes) {
    if (listed(place.pass_through, n.op_type)) continue;
    bool is_float = std::any_of(n.inputs.begin(), n.inputs.end(), [&](auto& in) { return is_float_value(g, ix, in); });
    bool ok = true;
    for (auto& in : n.inputs) {
      if (!is_float_value(g, ix, in) || covered.count(in)) continue;
      // A fused activation reads its layer's unquantized output: fine when the activation's output is quantized.
      if (listed(place.fused_activations, n.op_type) && !n.outputs.empty() && covered.count(n.outputs[0])) continue;
      ok = false;
    }
    bool has_weight = n.inputs.size() > 1 && g.is_initializer(n.inputs[1]) &&
                      (n.op_type == "Conv" || n.op_type == "ConvTranspose" || n.op_type == "Gemm" || n.op_type == "MatMul");
    if (has_weight && !weighted.count(n.name)) ok = false;
    for (auto& o : n.outputs) {
      if (!is_float_value(g, ix, o) || covered.count(o)) continue;
      auto& readers = ix.consumers(o);
      bool fused = readers.size() == 1 && listed(place.fused_activations, g.nodes[readers[0]].op_type) &&
                   covered.count(g.nodes[readers[0]].outputs[0]);
      if (!fused) ok = false;
    }
    if (!ok && (is_float || has_weight)) r.push_back(n.op_type + " '" + n.name + "'");
  }
  return r;
}

namespace {

DType container(const Grid& g) { return g.is_signed ? DType::Int8 : DType::UInt8; }
// Weight codes: int4/uint4 where the grid fits 4 bits and the model is at opset >= 21 (IR 10), else 8 bits.
DType weight_container(const Grid& g, bool opset21) {
  if (opset21 && g.qmin() >= (g.is_signed ? -8 : 0) && g.qmax() <= (g.is_signed ? 7 : 15))
    return g.is_signed ? DType::Int4 : DType::UInt4;
  return container(g);
}

// A per-group encoding as ONNX's blocked quantization (DequantizeLinear opset 21, block_size): possible when the
// groups run along one axis of the stored weight, for a 2-D weight (the other axis is the channel) or for a
// channel axis 0 with the rest flattened ([O, I, k...] stored as [O, I * k...], then reshaped back). Returns the
// stored shape, the block axis and the scale / zero point tensors' shape, or nothing where the layout differs (the
// weight then stays fake-quantized in float). Checked element by element against the encoding's own slice index.
struct BlockedLayout {
  Shape stored, param_shape;
  int axis = 1;
  std::vector<int64_t> param_slice;  // the encoding's slice for each scale entry
};
std::optional<BlockedLayout> blocked_layout(const Encoding& e) {
  const Shape& sh = e.shape;
  const int64_t G = e.spec.group_size;
  if (G <= 0 || sh.size() < 2 || (sh.size() > 2 && e.spec.axis != 0)) return std::nullopt;
  BlockedLayout b;
  int ch = e.spec.axis;
  if (sh.size() == 2) {
    b.stored = sh;
  } else {
    b.stored = {sh[0], shape_numel(sh) / std::max<int64_t>(sh[0], 1)};
  }
  b.axis = 1 - ch;
  const int64_t D = b.stored[(size_t)b.axis], blocks = D == 0 ? 0 : (D - 1) / G + 1;
  b.param_shape = b.stored;
  b.param_shape[(size_t)b.axis] = blocks;
  std::vector<int64_t> idx = slice_index(sh, e.spec);  // same row-major order as the stored 2-D view
  const int64_t cols = b.stored[1];
  b.param_slice.assign((size_t)shape_numel(b.param_shape), -1);
  for (int64_t r = 0; r < b.stored[0]; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      int64_t pr = b.axis == 0 ? r / G : r, pc = b.axis == 1 ? c / G : c;
      int64_t& slot = b.param_slice[(size_t)(pr * b.param_shape[1] + pc)];
      int64_t want = idx[(size_t)(r * cols + c)];
      if (slot < 0) slot = want;
      else if (slot != want) return std::nullopt;
    }
  return b;
}

Tensor zero_points(const Encoding& e, DType dt, bool vector) {
  std::vector<int32_t> z = e.zero_point;
  Tensor t = vector ? Tensor::from_vector<int32_t>({(int64_t)z.size()}, z) : Tensor::scalar<int32_t>(z.at(0));
  return t.cast(dt);
}

Tensor scales(const Encoding& e, bool vector) {
  return vector ? Tensor::from_vector<float>({(int64_t)e.scale.size()}, e.scale) : Tensor::scalar<float>(e.scale.at(0));
}

// Appends nodes that turn `src` into the fake-quantized `dst` (per-tensor encoding).
void emit_activation(Graph& g, NameAllocator& names, std::vector<Node>& out, const std::string& src, const std::string& dst,
                     const ActQuantizer& a) {
  const std::string base = dst;
  auto init = [&](const std::string& suffix, Tensor t) {
    std::string n = names.fresh(base + suffix);
    g.initializers[n] = std::move(t);
    return n;
  };
  auto node = [&](const std::string& op, std::vector<std::string> ins, std::vector<std::string> outs,
                  std::vector<Attribute> attrs = {}) {
    Node n;
    n.op_type = op;
    n.name = names.fresh(base + "/" + op);
    n.inputs = std::move(ins);
    n.outputs = std::move(outs);
    n.attrs = std::move(attrs);
    out.push_back(n);
  };
  if (a.dynamic) {
    std::string q = names.fresh(base + "/q"), s = names.fresh(base + "/scale"), z = names.fresh(base + "/zero_point");
    node("DynamicQuantizeLinear", {src}, {q, s, z});
    node("DequantizeLinear", {q, s, z}, {dst});
    return;
  }
  const Encoding& e = a.enc;
  const Grid& grid = e.spec.grid;
  float s = e.scale[0];
  int32_t z = e.zero_point[0];
  if (grid.bits <= 8) {
    std::string sc = init("/scale", Tensor::scalar<float>(s)), zp = init("/zero_point", zero_points(e, container(grid), false));
    std::string q = names.fresh(base + "/q");
    bool narrower = grid.qmin() != (grid.is_signed ? -128 : 0) || grid.qmax() != (grid.is_signed ? 127 : 255);
    std::string dq = narrower ? names.fresh(base + "/dq") : dst;
    node("QuantizeLinear", {src, sc, zp}, {q});
    node("DequantizeLinear", {q, sc, zp}, {dq});
    if (narrower) {  // exact: clamp(round(x/s)+z, -128, 127) then clip to the narrower grid
      std::string lo = init("/min", Tensor::scalar<float>(dequantize_one(grid.qmin(), s, z)));
      std::string hi = init("/max", Tensor::scalar<float>(dequantize_one(grid.qmax(), s, z)));
      node("Clip", {dq, lo, hi}, {dst});
    }
    return;
  }
  // 9..16 bits: ONNX opset 13 has no 16-bit QuantizeLinear; simulate in float with the same arithmetic.
  std::string sc = init("/scale", Tensor::scalar<float>(s)), zf = init("/zero_point_f", Tensor::scalar<float>((float)z));
  std::string qmin = init("/qmin", Tensor::scalar<float>((float)grid.qmin())), qmax = init("/qmax", Tensor::scalar<float>((float)grid.qmax()));
  auto v = [&](const char* n) { return names.fresh(base + "/" + n); };
  std::string d = v("div"), r = v("round"), a1 = v("add"), c = v("clip"), sb = v("sub");
  node("Div", {src, sc}, {d});
  node("Round", {d}, {r});
  node("Add", {r, zf}, {a1});
  node("Clip", {a1, qmin, qmax}, {c});
  node("Sub", {c, zf}, {sb});
  node("Mul", {sb, sc}, {dst});
}

}  // namespace

namespace {
// The static activation encoding that feeds `value`: its own quantizer, or the one before pass-through ops.
// Activation quantizers by tensor (the first for each, as a linear search finds).
std::unordered_map<std::string, const ActQuantizer*> acts_by_tensor(const QuantSimPlan& plan) {
  std::unordered_map<std::string, const ActQuantizer*> m;
  for (auto& a : plan.acts) m.emplace(a.tensor, &a);
  return m;
}
const Encoding* input_encoding(const Graph& g, const GraphIndex& ix, const std::vector<std::string>& pass_through,
                               const std::unordered_map<std::string, const ActQuantizer*>& acts, std::string value) {
  for (int hops = 0; hops < 64; ++hops) {
    if (auto it = acts.find(value); it != acts.end()) return it->second->dynamic ? nullptr : &it->second->enc;
    int p = ix.producer(value);
    if (p < 0 || !listed(pass_through, g.nodes[(size_t)p].op_type) || g.nodes[(size_t)p].inputs.empty()) return nullptr;
    value = g.nodes[(size_t)p].inputs[0];
  }
  return nullptr;
}
}  // namespace

std::vector<std::string> relax_mixed_range_output_concats(const Model& m, QuantSimPlan& plan, float max_ratio) {
  const Graph& g = m.graph;
  const GraphIndex ix(g);
  std::vector<std::string> lines;
  for (auto& n : g.nodes) {
    if (n.op_type != "Concat" || n.outputs.empty() || !g.is_graph_output(n.outputs[0]) ||
        !ix.consumers(n.outputs[0]).empty())
      continue;
    auto own = std::find_if(plan.acts.begin(), plan.acts.end(),
                            [&](const ActQuantizer& a) { return a.tensor == n.outputs[0] && !a.dynamic; });
    if (own == plan.acts.end()) continue;
    float lo = INFINITY, hi = 0;
    bool all = !n.inputs.empty();
    auto acts = acts_by_tensor(plan);  // rebuilt per Concat: the loop below erases from plan.acts
    for (auto& in : n.inputs) {
      const Encoding* e = input_encoding(g, ix, plan.placement.pass_through, acts, in);
      if (!e || e->scale.size() != 1) {
        all = false;
        break;
      }
      lo = std::min(lo, e->scale[0]), hi = std::max(hi, e->scale[0]);
    }
    if (!all || !(lo > 0) || hi <= max_ratio * lo) continue;
    plan.acts.erase(own);
    char buf[160];
    std::snprintf(buf, sizeof buf, "'%s': input scales %.3g and %.3g", n.name.empty() ? n.outputs[0].c_str() : n.name.c_str(),
                  hi, lo);
    lines.push_back(buf);
  }
  return lines;
}

Model build_quantized_model(const Model& src, const QuantSimPlan& plan, Mode mode, bool int32_bias, int* int32_biases) {
  Model m = src;
  Graph& g = m.graph;
  NameAllocator names(g);
  int biases = 0;
  std::map<std::string, std::string> bias_value;  // node name -> value its bias input now reads
  bool per_axis = std::any_of(plan.weights.begin(), plan.weights.end(), [](auto& w) {
    return w.q.spec.granularity == Granularity::PerChannel && w.q.spec.grid.bits <= 8;
  });
  if (per_axis || mode == Mode::Dynamic)
    check(m.opset("") >= 13, "per-channel QDQ needs ONNX opset >= 13; the model uses opset ", m.opset(""),
          " (use --per-tensor)");
  if (m.opset("") < 10) m.opsets[""] = 10;  // QuantizeLinear/DequantizeLinear appear in opset 10
  // Opset 21 (IR 10) adds int4/uint4 codes and blocked DequantizeLinear: 4-bit weights are stored in 4 bits and
  // per-group weights as blocked codes there (quantize() converts the model first when it has such weights).
  const bool opset21 = m.opset("") >= 21;
  // Weights. New nodes go in front of the graph: collected here and placed once (latest first, the order repeated
  // front insertions gave), so the pass stays linear in the graph size.
  std::map<std::string, std::string> weight_value;  // node name -> value its weight input now reads
  std::vector<Node> front;
  std::unordered_map<std::string, const Node*> src_by_name;
  for (auto& n : src.graph.nodes) src_by_name[n.name] = &n;
  const GraphIndex src_ix(src.graph);
  const auto src_acts = acts_by_tensor(plan);
  for (auto& w : plan.weights) {
    const Tensor& t = src.graph.initializers.at(w.tensor);
    std::string base = names.fresh(w.tensor + "/" + w.node);
    if (mode == Mode::Fp16) {
      Tensor h = t.cast(DType::Float16);
      std::string hn = names.fresh(base + "/fp16");
      g.initializers[hn] = h;
      Node cast;
      cast.op_type = "Cast";
      cast.name = names.fresh(base + "/Cast");
      cast.inputs = {hn};
      cast.outputs = {names.fresh(base + "/float")};
      cast.attrs = {attr_int("to", (int64_t)DType::Float32)};
      weight_value[w.node] = cast.outputs[0];
      front.push_back(std::move(cast));
      continue;
    }
    const Encoding& e = w.enc;
    const Grid& grid = e.spec.grid;
    std::optional<BlockedLayout> blocked;
    if (opset21 && grid.bits <= 8 && e.spec.granularity == Granularity::PerGroup) blocked = blocked_layout(e);
    if (blocked) {  // DequantizeLinear(codes [stored], scale, zero point, axis, block_size) [-> Reshape]
      std::vector<int32_t> q((size_t)t.numel());
      quantize(t.data<float>(), q.data(), e);
      DType ct = weight_container(grid, true);
      std::vector<float> sv;
      std::vector<int32_t> zv;
      for (int64_t k : blocked->param_slice) {
        sv.push_back(e.scale[(size_t)k]);
        zv.push_back(e.zero_point[(size_t)k]);
      }
      std::string qn = names.fresh(base + "/quantized"), sn = names.fresh(base + "/scale"),
                  zn = names.fresh(base + "/zero_point");
      g.initializers[qn] = Tensor::from_vector<int32_t>(blocked->stored, q).cast(ct);
      g.initializers[sn] = Tensor::from_vector<float>(blocked->param_shape, sv);
      g.initializers[zn] = Tensor::from_vector<int32_t>(blocked->param_shape, zv).cast(ct);
      Node dq;
      dq.op_type = "DequantizeLinear";
      dq.name = names.fresh(base + "/DequantizeLinear");
      dq.inputs = {qn, sn, zn};
      dq.outputs = {names.fresh(base + "/dequantized")};
      dq.attrs = {attr_int("axis", blocked->axis), attr_int("block_size", e.spec.group_size)};
      weight_value[w.node] = dq.outputs[0];
      if (blocked->stored != t.shape()) {
        std::string shn = names.fresh(base + "/shape");
        g.initializers[shn] = Tensor::from_vector<int64_t>({(int64_t)t.rank()}, t.shape());
        Node rs;
        rs.op_type = "Reshape";
        rs.name = names.fresh(base + "/Reshape");
        rs.inputs = {dq.outputs[0], shn};
        rs.outputs = {names.fresh(base + "/reshaped")};
        weight_value[w.node] = rs.outputs[0];
        front.push_back(std::move(rs));  // front insertions run latest first: the Reshape goes after its DQ
      }
      front.push_back(std::move(dq));
      continue;
    }
    if (grid.bits > 8 || e.spec.granularity == Granularity::PerGroup) {
      Tensor f(DType::Float32, t.shape());
      fake_quantize(t.data<float>(), f.data<float>(), e);
      std::string fn = names.fresh(base + "/fakequant");
      g.initializers[fn] = f;
      weight_value[w.node] = fn;
      continue;
    }
    std::vector<int32_t> q((size_t)t.numel());
    quantize(t.data<float>(), q.data(), e);
    bool vec = e.spec.granularity == Granularity::PerChannel;
    const DType ct = weight_container(grid, opset21);
    std::string qn = names.fresh(base + "/quantized");
    g.initializers[qn] = Tensor::from_vector<int32_t>(t.shape(), q).cast(ct);
    std::string sn = names.fresh(base + "/scale");
    g.initializers[sn] = scales(e, vec);
    std::string zn = names.fresh(base + "/zero_point");
    g.initializers[zn] = zero_points(e, ct, vec);
    Node dq;
    dq.op_type = "DequantizeLinear";
    dq.name = names.fresh(base + "/DequantizeLinear");
    dq.inputs = {qn, sn, zn};
    dq.outputs = {names.fresh(base + "/dequantized")};
    if (vec) dq.attrs = {attr_int("axis", e.spec.axis)};
    weight_value[w.node] = dq.outputs[0];
    front.push_back(std::move(dq));
    // int32 bias: b_q[c] = round(b[c] / (s_x * s_w[c])), zero point 0.
    auto li = src_by_name.find(w.node);
    const Node* layer = li == src_by_name.end() ? nullptr : li->second;
    const Encoding* xe = layer ? input_encoding(src.graph, src_ix, plan.placement.pass_through, src_acts, layer->inputs[0]) : nullptr;
    if (!int32_bias || !xe || (layer->op_type != "Conv" && layer->op_type != "Gemm") || layer->inputs.size() < 3 ||
        !src.graph.is_initializer(layer->inputs[2]))
      continue;
    const Tensor& b = src.graph.initializers.at(layer->inputs[2]);
    int64_t channels = layer->op_type == "Conv" ? t.dim(0) : (layer->attr_int("transB", 0) ? t.dim(0) : t.dim(1));
    if (b.dtype() != DType::Float32 || b.rank() != 1 || b.numel() != channels) continue;
    std::vector<float> bs((size_t)channels);
    std::vector<int32_t> bq((size_t)channels);
    for (int64_t c = 0; c < channels; ++c) {
      bs[(size_t)c] = xe->scale[0] * e.scale[vec ? (size_t)c : 0];
      double v = std::nearbyint((double)b.data<float>()[c] / bs[(size_t)c]);
      bq[(size_t)c] = std::isnan(v) ? 0 : (int32_t)std::clamp(v, -2147483648.0, 2147483647.0);
    }
    std::string bb = names.fresh(layer->inputs[2] + "/" + w.node);
    std::string bqn = names.fresh(bb + "/int32"), bsn = names.fresh(bb + "/scale"), bzn = names.fresh(bb + "/zero_point");
    g.initializers[bqn] = Tensor::from_vector<int32_t>({channels}, bq);
    // Per-tensor weights give one bias scale: stored as a scalar without `axis`, which DequantizeLinear before
    // opset 13 (an opset-10..12 model quantized per tensor is not converted) does not have.
    g.initializers[bsn] = vec ? Tensor::from_vector<float>({channels}, bs) : Tensor::scalar<float>(bs[0]);
    g.initializers[bzn] = vec ? Tensor(DType::Int32, {channels}) : Tensor::scalar<int32_t>(0);
    Node bdq;
    bdq.op_type = "DequantizeLinear";
    bdq.name = names.fresh(bb + "/DequantizeLinear");
    bdq.inputs = {bqn, bsn, bzn};
    bdq.outputs = {names.fresh(bb + "/dequantized")};
    if (vec) bdq.attrs = {attr_int("axis", 0)};
    bias_value[w.node] = bdq.outputs[0];
    front.push_back(std::move(bdq));
    ++biases;
  }
  std::reverse(front.begin(), front.end());
  g.nodes.insert(g.nodes.begin(), std::make_move_iterator(front.begin()), std::make_move_iterator(front.end()));
  if (int32_biases) *int32_biases = biases;
  for (auto& n : g.nodes) {
    if (auto it = weight_value.find(n.name); it != weight_value.end() && n.inputs.size() > 1) n.inputs[1] = it->second;
    if (auto it = bias_value.find(n.name); it != bias_value.end() && n.inputs.size() > 2) n.inputs[2] = it->second;
  }
  // ONNX QuantizeLinear, DynamicQuantizeLinear and Round all round half to even: an activation quantizer that
  // rounds otherwise would make the file compute other values than the simulation, so it is refused here.
  // (Weights are quantized by lowbit itself, under their own policy, and stored as integers.)
  for (auto& a : plan.acts)
    check(a.q.spec.rounding == Rounding::HalfToEven, "activation '", a.tensor, "': rounding 'half_away' cannot be "
          "exported to ONNX QDQ, whose QuantizeLinear rounds half to even, so the file would not compute what the "
          "simulation reports; set activations.rounding to \"half_even\" (weights may keep \"half_away\")");
  // Activations: the producer writes "<t>/float"; the quantizer chain writes t, so names (outputs too) stay.
  // Chains are collected per insertion point (in front, or after their producer; latest first, as repeated
  // insertion placed them) and the node list is rebuilt once.
  const GraphIndex ix(g);
  std::vector<std::vector<Node>> head;                           // chains for graph inputs, in insertion order
  std::vector<std::vector<std::vector<Node>>> after(g.nodes.size());  // per node, chains in insertion order
  for (auto& a : plan.acts) {
    std::string pre = names.fresh(a.tensor + "/float");
    int prod = ix.producer(a.tensor);
    std::vector<Node> chain;
    if (prod >= 0) {
      for (auto& o : g.nodes[(size_t)prod].outputs)
        if (o == a.tensor) o = pre;
      emit_activation(g, names, chain, pre, a.tensor, a);
      after[(size_t)prod].push_back(std::move(chain));
    } else {  // a graph input keeps its name: its readers move to the quantized value
      pre = a.tensor;
      std::string q = names.fresh(a.tensor + "/quantized");
      replace_uses(g, a.tensor, q);
      for (auto& c : head)
        for (auto& nd : c)
          for (auto& in : nd.inputs)
            if (in == a.tensor) in = q;
      for (auto& list : after)
        for (auto& c : list)
          for (auto& nd : c)
            for (auto& in : nd.inputs)
              if (in == a.tensor) in = q;
      emit_activation(g, names, chain, pre, q, a);
      head.push_back(std::move(chain));
    }
  }
  std::vector<Node> rebuilt;
  rebuilt.reserve(g.nodes.size() + 4 * plan.acts.size());
  for (auto c = head.rbegin(); c != head.rend(); ++c)
    for (auto& nd : *c) rebuilt.push_back(std::move(nd));
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    rebuilt.push_back(std::move(g.nodes[i]));
    for (auto c = after[i].rbegin(); c != after[i].rend(); ++c)
      for (auto& nd : *c) rebuilt.push_back(std::move(nd));
  }
  g.nodes = std::move(rebuilt);
  topological_sort(g);
  remove_dead_nodes(g);
  m.producer_name = "lowbit";
  return m;
}

}  // namespace lowbit::quant
