#include "train/qat.h"
#include "ir/fed_inputs.h"

#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <numeric>
#include <random>
#include <set>

#include "io/npy.h"
#include "ir/builder.h"
#include "ir/passes.h"
#include "runtime/executor.h"
#include "train/tape.h"

namespace lowbit::train {

QatMethod parse_qat_method(const std::string& s) {
  if (s == "ste") return QatMethod::Ste;
  if (s == "lsq") return QatMethod::Lsq;
  if (s == "lsq+") return QatMethod::LsqPlus;
  if (s == "pact") return QatMethod::Pact;
  fail("unknown QAT method '", s, "' (expected ste, lsq, lsq+ or pact)");
}
const char* qat_method_name(QatMethod m) {
  switch (m) {
    case QatMethod::Ste: return "ste";
    case QatMethod::Lsq: return "lsq";
    case QatMethod::LsqPlus: return "lsq+";
    case QatMethod::Pact: return "pact";
  }
  return "?";
}

namespace {

void check_spec(const quant::QuantizerSpec& s, QatMethod method, const std::string& what) {
  check(s.granularity != quant::Granularity::PerGroup, what,
        ": QAT covers per-tensor and per-channel quantizers, not per-group");
  check(s.rounding == quant::Rounding::HalfToEven, what,
        ": QAT rounds half to even (as QuantizeLinear does); half-away rounding is not trained");
  check(s.scale_form == quant::ScaleForm::Float || method == QatMethod::Ste, what,
        ": power-of-two scales cannot be learned; use --method ste (scales stay at their PTQ values)");
}

// Elements per scale of one sample: the activation's size without its batch axis.
std::map<std::string, int64_t> per_sample_sizes(const Model& m, const std::string& input, const Tensor& sample,
                                                const std::vector<std::string>& names) {
  Executor ex(m);
  std::map<std::string, int64_t> r;
  int64_t batch = std::max<int64_t>(1, sample.rank() ? sample.dim(0) : 1);
  ex.add_hook([&](const Node*, const std::string& name, Tensor& v) { r[name] = v.numel() / batch; }, names, true);
  ex.run({{input, sample}});
  return r;
}

}  // namespace

namespace {

Node make(const std::string& op, std::vector<std::string> ins, std::vector<std::string> outs, const std::string& name,
          std::vector<Attribute> attrs = {}) {
  Node n;
  n.op_type = op, n.name = name, n.inputs = std::move(ins), n.outputs = std::move(outs), n.attrs = std::move(attrs);
  return n;
}

// Rebuilds the layer a BatchNormalization was folded into (MQBench §3.2; formulas in docs/qat.md). With k = gamma /
// sqrt(var + eps), the folded weight W and bias b become W' = W / k and b' = mean + (b - beta) / k, so that folding
// them again gives W and b exactly (whatever CLE did to the folded layer, whose gamma and beta it rescaled too).
//   strategy 1: W_fold = W' * k, b_fold = (b' - mean) * k + beta, in the graph, with gamma, beta, W', b' trained and
//               the running statistics fixed;
//   strategy 4: y = Conv(x, Q(W' * k)) / k + b', then BatchNormalization with batch statistics (training mode), its
//               running statistics updated each step; inference folds k with the running statistics again.
QatGraph::BnFold unfold_layer(Graph& g, int64_t opset, NameAllocator& names, const std::string& bn_out,
                              const quant::BnParams& p, int strategy, std::set<std::string>& frozen,
                              std::vector<std::pair<std::string, std::string>>& stats) {
  int li = -1;
  for (size_t i = 0; i < g.nodes.size(); ++i)
    if (g.nodes[i].name == p.layer) li = (int)i;
  check(li >= 0, "BatchNorm folding: no layer '", p.layer, "'");
  Node& L = g.nodes[(size_t)li];
  check(L.outputs[0] == bn_out && L.inputs.size() >= 3 && g.is_initializer(L.inputs[1]) && g.is_initializer(L.inputs[2]),
        L.describe(), ": not the folded layer of BatchNormalization output '", bn_out, "'");
  bool gemm = L.op_type == "Gemm";
  int axis = gemm && L.attr_int("transB", 0) == 0 ? 1 : 0;
  const Tensor& W = g.initializers.at(L.inputs[1]);
  const Tensor& B = g.initializers.at(L.inputs[2]);
  int64_t M = (int64_t)p.gamma.size();
  check(W.dim(axis) == M && B.numel() == M, L.describe(), ": weight and bias do not match ", M, " BatchNorm channels");
  QatGraph::BnFold f;
  f.layer = L.name, f.folded_weight = L.inputs[1], f.folded_bias = L.inputs[2], f.eps = p.eps, f.axis = axis;
  int64_t inner = 1, outer = 1;
  for (int d = axis + 1; d < W.rank(); ++d) inner *= W.dim(d);
  for (int d = 0; d < axis; ++d) outer *= W.dim(d);
  std::vector<double> k((size_t)M);
  for (int64_t c = 0; c < M; ++c) {
    k[(size_t)c] = p.gamma[(size_t)c] / std::sqrt((double)p.var[(size_t)c] + p.eps);
    check(k[(size_t)c] != 0 && std::isfinite(k[(size_t)c]), L.describe(), ": BatchNorm channel ", c,
          " has gamma 0; strategies 1 and 4 divide by it (use --bn-fold 0)");
  }
  Tensor w0 = Tensor::uninitialized(DType::Float32, W.shape());
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t c = 0; c < M; ++c)
      for (int64_t i = 0; i < inner; ++i) {
        int64_t at = (o * M + c) * inner + i;
        w0.data<float>()[at] = (float)(W.data<float>()[at] / k[(size_t)c]);
      }
  std::vector<float> b0((size_t)M), inv((size_t)M);
  for (int64_t c = 0; c < M; ++c) {
    b0[(size_t)c] = (float)(p.mean[(size_t)c] + (B.data<float>()[c] - p.beta[(size_t)c]) / k[(size_t)c]);
    inv[(size_t)c] = (float)(1.0 / std::sqrt((double)p.var[(size_t)c] + p.eps));
  }
  std::string base = L.name;
  auto init = [&](const std::string& what, Tensor t) {
    std::string n = names.fresh(base + "/" + what);
    g.initializers[n] = std::move(t);
    return n;
  };
  auto vec = [&](const std::vector<float>& v) { return Tensor::from_vector<float>({M}, v); };
  f.weight = init("weight", w0);
  f.bias = init("bias", vec(b0));
  f.gamma = init("gamma", vec(p.gamma));
  f.beta = init("beta", vec(p.beta));
  f.mean = init("running_mean", vec(p.mean));
  frozen.insert(f.mean);
  Shape ws(W.rank(), 1);
  ws[(size_t)axis] = M;
  std::string wshape = init("weight_shape", Tensor::from_vector<int64_t>({(int64_t)ws.size()}, ws));
  std::vector<Node> add;
  auto v = [&](const std::string& what) { return names.fresh(base + "/" + what); };
  // Output channels on axis 1 of the layer's output ([N, M, ...] for Conv, [N, M] for Gemm).
  int out_rank = gemm ? 2 : W.rank();
  Shape ys(out_rank, 1);
  ys[1] = M;
  std::string yshape = init("output_shape", Tensor::from_vector<int64_t>({(int64_t)ys.size()}, ys));
  auto reshape = [&](const std::string& t, const std::string& shape, const std::string& what) {
    std::string o = v(what);
    add.push_back(make("Reshape", {t, shape}, {o}, v(what + "_reshape")));
    return o;
  };
  // k = gamma / sqrt(var + eps) from a variance value.
  auto k_of = [&](const std::string& var, const std::string& what) {
    std::string eps = init(what + "_eps", Tensor::scalar<float>(p.eps)), ve = v(what + "_var_eps"), sd = v(what + "_std"),
                k = v(what);
    add.push_back(make("Add", {var, eps}, {ve}, v(what + "_add")));
    add.push_back(make("Sqrt", {ve}, {sd}, v(what + "_sqrt")));
    add.push_back(make("Div", {f.gamma, sd}, {k}, v(what + "_div")));
    return k;
  };
  auto folded_bias = [&](const std::string& mean, const std::string& k) {  // (b' - mean) * k + beta
    std::string t1 = v("bias_centered"), t2 = v("bias_scaled"), bf = v("b_fold");
    add.push_back(make("Sub", {f.bias, mean}, {t1}, v("bias_sub")));
    add.push_back(make("Mul", {t1, k}, {t2}, v("bias_mul")));
    add.push_back(make("Add", {t2, f.beta}, {bf}, v("bias_add")));
    return bf;
  };
  auto fold_weight = [&](const std::string& k) {
    f.w_fold = v("w_fold");
    add.push_back(make("Mul", {f.weight, reshape(k, wshape, "k_weight")}, {f.w_fold}, v("w_mul")));
    L.inputs[1] = f.w_fold;
  };
  if (strategy == 1) {
    f.var_or_inv_std = init("inv_std", vec(inv));
    frozen.insert(f.var_or_inv_std);
    std::string kk = v("k");
    add.push_back(make("Mul", {f.gamma, f.var_or_inv_std}, {kk}, v("k_mul")));
    fold_weight(kk);
    L.inputs[2] = folded_bias(f.mean, kk);
  } else {
    f.var_or_inv_std = init("running_var", vec(p.var));
    frozen.insert(f.var_or_inv_std);
  }
  if (strategy == 2 || strategy == 3) {
    // Batch statistics of the float layer: z = Layer(x, W', b'), mean and (population) variance over every axis
    // but the channels', and the running statistics' update (momentum 0.9, as BatchNormalization's default).
    Node fl = L;
    fl.name = v("float_layer");
    fl.inputs[1] = f.weight;
    if (fl.inputs.size() < 3) fl.inputs.resize(3);
    fl.inputs[2] = f.bias;
    std::string z = v("float_out");
    fl.outputs = {z};
    add.push_back(fl);
    std::vector<int64_t> axes;
    for (int d = 0; d < out_rank; ++d)
      if (d != 1) axes.push_back(d);
    auto mean_over = [&](const std::string& t, const std::string& what) {
      std::string o = v(what);
      Node n = make("ReduceMean", {t}, {o}, v(what + "_reduce"), {attr_int("keepdims", 0)});
      if (opset >= 18) n.inputs.push_back(init(what + "_axes", Tensor::from_vector<int64_t>({(int64_t)axes.size()}, axes)));
      else n.attrs.push_back(attr_ints("axes", axes));
      add.push_back(n);
      return o;
    };
    f.batch_mean = mean_over(z, "batch_mean");
    std::string d = v("centered"), d2 = v("squared");
    add.push_back(make("Sub", {z, reshape(f.batch_mean, yshape, "batch_mean_out")}, {d}, v("center")));
    add.push_back(make("Mul", {d, d}, {d2}, v("square")));
    f.batch_var = mean_over(d2, "batch_var");
    for (auto [run, batch] : {std::make_pair(f.mean, f.batch_mean), std::make_pair(f.var_or_inv_std, f.batch_var)}) {
      std::string m0 = init(batch + "_keep", Tensor::scalar<float>(0.9f)), m1 = init(batch + "_take", Tensor::scalar<float>(0.1f));
      std::string a = v(batch + "_old"), b = v(batch + "_new"), c = v(batch + "_running");
      add.push_back(make("Mul", {run, m0}, {a}, v(batch + "_mul_old")));
      add.push_back(make("Mul", {batch, m1}, {b}, v(batch + "_mul_new")));
      add.push_back(make("Add", {a, b}, {c}, v(batch + "_update")));
      stats.push_back({run, c});
    }
    std::string kb = k_of(f.batch_var, "k_batch");
    if (strategy == 2) {
      // The quantized layer folds the batch statistics: Layer(x, Q(W' * k_b)) + (b' - mean_b) * k_b + beta.
      fold_weight(kb);
      L.inputs[2] = folded_bias(f.batch_mean, kb);
    } else {
      // Jacob et al.: the quantized layer folds the running statistics, and its output is corrected to the batch
      // statistics: Layer(x, Q(W' * k_r)) * (k_b / k_r) + (b' - mean_b) * k_b + beta.
      std::string kr = k_of(f.var_or_inv_std, "k_running");
      fold_weight(kr);
      L.inputs.resize(2);
      std::string yq = v("quantized_out"), c = v("correction"), y1 = v("corrected"), bias = folded_bias(f.batch_mean, kb);
      L.outputs[0] = yq;
      add.push_back(make("Div", {kb, kr}, {c}, v("correction_div")));
      add.push_back(make("Mul", {yq, reshape(c, yshape, "correction_out")}, {y1}, v("correct")));
      add.push_back(make("Add", {y1, reshape(bias, yshape, "bias_out")}, {bn_out}, v("bias_add_out")));
    }
  }
  if (strategy == 4) {
    std::string kk = k_of(f.var_or_inv_std, "k");
    fold_weight(kk);
    std::string y = v("conv"), y2 = v("unscaled"), y3 = v("biased");
    L.inputs.resize(2);
    L.outputs[0] = y;
    add.push_back(make("Div", {y, reshape(kk, yshape, "k_output")}, {y2}, v("unscale")));
    add.push_back(make("Add", {y2, reshape(f.bias, yshape, "bias_output")}, {y3}, v("bias_add")));
    f.bn = v("bn");
    f.mean_out = v("batch_mean"), f.var_out = v("batch_var");
    add.push_back(make("BatchNormalization", {y3, f.gamma, f.beta, f.mean, f.var_or_inv_std}, {bn_out, f.mean_out, f.var_out},
                       f.bn, {attr_float("epsilon", p.eps), attr_float("momentum", 0.9f), attr_int("training_mode", 1)}));
    stats.push_back({f.mean, f.mean_out});
    stats.push_back({f.var_or_inv_std, f.var_out});
  }
  std::string old_w = f.folded_weight, old_b = f.folded_bias;
  g.nodes.insert(g.nodes.end(), add.begin(), add.end());
  // The folded initializers are no longer read (unless shared): they are rebuilt from the trained values at export.
  auto unused = [&](const std::string& n) {
    for (auto& node : g.nodes)
      for (auto& in : node.inputs)
        if (in == n) return false;
    return true;
  };
  if (unused(old_w)) g.initializers.erase(old_w);
  if (unused(old_b)) g.initializers.erase(old_b);
  return f;
}

}  // namespace

QatGraph build_qat_graph(const Model& prepared, const quant::QuantSimPlan& plan, QatMethod method,
                         const Tensor& sample, int bn_fold,
                         const std::map<std::string, quant::BnParams>& batch_norms) {
  QatGraph q;
  q.model = prepared;
  Graph& g = q.model.graph;
  q.input = single_fed_input(g, "QAT needs a single-input model");
  check(!g.outputs.empty(), "the model has no outputs");
  q.logits = g.outputs[0].name;
  std::vector<std::string> act_names;
  for (auto& a : plan.acts) {
    check(!a.dynamic, "QAT trains static quantizers; dynamic activation quantization has nothing to learn");
    act_names.push_back(a.tensor);
  }
  auto per_sample = per_sample_sizes(prepared, q.input, sample, act_names);
  NameAllocator names(g);
  std::set<std::string> quant_names, frozen;
  check(bn_fold >= 0 && bn_fold <= 4, "--bn-fold ", bn_fold, ": the strategies are 0 to 4 (docs/qat.md)");
  q.bn_fold = bn_fold;
  std::map<std::string, std::string> weight_source;  // layer -> the value it reads as its weight now
  if (bn_fold != 0) {
    for (auto& [out, p] : batch_norms) {
      q.bn_folds.push_back(unfold_layer(g, q.model.opset(""), names, out, p, bn_fold, frozen, q.stats));
      weight_source[p.layer] = q.bn_folds.back().w_fold;
    }
    if (bn_fold == 4) q.model.opsets[""] = std::max<int64_t>(q.model.opset(""), 14);  // BN training mode
  }
  auto add_quantizer = [&](const std::string& base, const quant::Encoding& e, int64_t n_per_scale, bool weight) {
    std::vector<float> zp(e.zero_point.begin(), e.zero_point.end());
    std::string s = names.fresh(base + "/scale"), z = names.fresh(base + "/offset");
    g.initializers[s] = Tensor::from_vector<float>({(int64_t)e.scale.size()}, e.scale);
    g.initializers[z] = Tensor::from_vector<float>({(int64_t)zp.size()}, zp);
    bool pact = method == QatMethod::Pact;
    if (method == QatMethod::Lsq || method == QatMethod::LsqPlus || (pact && !weight)) q.quant_params.push_back(s);
    if (pact && !weight) q.decayed_quant_params.push_back(s);
    if (method == QatMethod::LsqPlus && !e.spec.symmetric) q.quant_params.push_back(z);
    quant_names.insert(s), quant_names.insert(z);
    Node n;
    n.op_type = "FakeQuant", n.domain = "lowbit", n.name = names.fresh(base + "/fq");
    // PACT learns the clipping level alpha = s * qmax with dy/dalpha = 1 above it: the scale's gradient is qmax
    // times that, so grad_scale 1 / qmax^2 makes the step in alpha PACT's.
    double lsq = 1.0 / std::sqrt((double)std::max<int64_t>(1, n_per_scale) * std::max(1, e.spec.grid.qmax()));
    double qm = std::max(1, e.spec.grid.qmax());
    n.attrs = {attr_int("qmin", e.spec.grid.qmin()), attr_int("qmax", e.spec.grid.qmax()),
               attr_int("axis", e.spec.axis), attr_float("grad_scale", (float)(pact ? 1.0 / (qm * qm) : lsq)),
               attr_int("inside_grad", pact ? 0 : 1)};
    return std::make_pair(n, std::make_pair(s, z));
  };
  std::vector<Node> added;
  for (size_t i = 0; i < plan.weights.size(); ++i) {
    const auto& w = plan.weights[i];
    check_spec(w.enc.spec, method, "weight '" + w.tensor + "'");
    check(!w.enc.scale.empty(), "weight '", w.tensor, "' has no encoding");
    std::string src = weight_source.count(w.node) ? weight_source.at(w.node) : w.tensor;
    check(src != w.tensor || g.is_initializer(w.tensor), "weight '", w.tensor, "' is not an initializer");
    int64_t per = shape_numel(w.enc.shape) / (int64_t)w.enc.scale.size();
    auto [n, sz] = add_quantizer(w.tensor, w.enc, per, true);
    std::string out = names.fresh(w.tensor + "/fq");
    n.inputs = {src, sz.first, sz.second};
    n.outputs = {out};
    bool found = false;
    for (auto& node : g.nodes)
      if (node.name == w.node)
        for (auto& in : node.inputs)
          if (in == src) in = out, found = true;
    check(found, "weight quantizer for '", w.tensor, "': node '", w.node, "' does not read it");
    added.push_back(n);
    q.quantizers.push_back({true, i, sz.first, sz.second});
  }
  for (size_t i = 0; i < plan.acts.size(); ++i) {
    const auto& a = plan.acts[i];
    check_spec(a.enc.spec, method, "activation '" + a.tensor + "'");
    check(!a.enc.scale.empty(), "activation '", a.tensor, "' has no encoding (calibrate first)");
    auto [n, sz] = add_quantizer(a.tensor, a.enc, per_sample.count(a.tensor) ? per_sample.at(a.tensor) : 1, false);
    int p = g.producer(a.tensor);
    if (p < 0) {  // a graph input: its readers read the quantized copy
      std::string out = names.fresh(a.tensor + "/fq");
      for (auto& node : g.nodes)
        for (auto& in : node.inputs)
          if (in == a.tensor) in = out;
      n.inputs = {a.tensor, sz.first, sz.second};
      n.outputs = {out};
    } else {  // the producer writes a raw value; the quantizer's output keeps the name (graph outputs included)
      std::string raw = names.fresh(a.tensor + "/raw");
      for (auto& o : g.nodes[(size_t)p].outputs)
        if (o == a.tensor) o = raw;
      n.inputs = {raw, sz.first, sz.second};
      n.outputs = {a.tensor};
    }
    added.push_back(n);
    q.quantizers.push_back({false, i, sz.first, sz.second});
  }
  g.nodes.insert(g.nodes.end(), added.begin(), added.end());
  q.model.opsets["lowbit"] = 1;
  for (auto& [name, t] : g.initializers)
    if (t.dtype() == DType::Float32 && t.numel() > 1 && !quant_names.count(name) && !frozen.count(name) &&
        !g.is_graph_input(name))
      q.weights.push_back(name);
  return q;
}

void write_back(const QatGraph& q, const Model& trained, Model& prepared, quant::QuantSimPlan& plan) {
  const auto& init = trained.graph.initializers;
  for (auto& w : q.weights)
    if (prepared.graph.is_initializer(w)) prepared.graph.initializers[w] = init.at(w).clone();
  // Strategies 1-4: the folded weight and bias from the trained parameters (and, for 2-4, the running statistics
  // as they stand), in float32 operation for operation as the training graph computes W_fold.
  for (auto& f : q.bn_folds) {
    const Tensor& W = init.at(f.weight);
    auto val = [&](const std::string& n) { return init.at(n).data<float>(); };
    const float *gamma = val(f.gamma), *beta = val(f.beta), *mean = val(f.mean), *vs = val(f.var_or_inv_std),
                *b0 = val(f.bias);
    int64_t M = init.at(f.gamma).numel();
    std::vector<float> k((size_t)M);
    for (int64_t c = 0; c < M; ++c)
      k[(size_t)c] = q.bn_fold == 1 ? gamma[c] * vs[c] : gamma[c] / std::sqrt(vs[c] + f.eps);
    int axis = f.axis;
    int64_t inner = 1, outer = 1;
    for (int d = axis + 1; d < W.rank(); ++d) inner *= W.dim(d);
    for (int d = 0; d < axis; ++d) outer *= W.dim(d);
    Tensor wf = Tensor::uninitialized(DType::Float32, W.shape());
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t c = 0; c < M; ++c)
        for (int64_t i = 0; i < inner; ++i) {
          int64_t at = (o * M + c) * inner + i;
          wf.data<float>()[at] = W.data<float>()[at] * k[(size_t)c];
        }
    Tensor bf = Tensor::uninitialized(DType::Float32, {M});
    for (int64_t c = 0; c < M; ++c) bf.data<float>()[c] = (b0[c] - mean[c]) * k[(size_t)c] + beta[c];
    prepared.graph.initializers[f.folded_weight] = wf;
    prepared.graph.initializers[f.folded_bias] = bf;
  }
  for (auto& fq : q.quantizers) {
    quant::Encoding& e = fq.weight ? plan.weights[fq.index].enc : plan.acts[fq.index].enc;
    const Tensor& s = init.at(fq.scale);
    const Tensor& z = init.at(fq.offset);
    for (size_t k = 0; k < e.scale.size(); ++k) {
      e.scale[k] = s.data<float>()[k];
      float zr = std::nearbyint(z.data<float>()[k]);
      e.zero_point[k] = (int32_t)std::min<float>(std::max<float>(zr, (float)e.spec.grid.qmin()), (float)e.spec.grid.qmax());
    }
  }
}

namespace {

Tensor gather_rows(const Tensor& x, const std::vector<int64_t>& rows) {
  Shape s = x.shape();
  s[0] = (int64_t)rows.size();
  Tensor r = Tensor::uninitialized(x.dtype(), s);
  size_t row_bytes = x.nbytes() / (size_t)std::max<int64_t>(1, x.dim(0));
  const auto* src = static_cast<const std::byte*>(x.raw());
  auto* dst = static_cast<std::byte*>(r.raw_mut());
  for (size_t i = 0; i < rows.size(); ++i) std::memcpy(dst + i * row_bytes, src + rows[i] * row_bytes, row_bytes);
  return r;
}

constexpr const char* kParam = "param/";
constexpr const char* kOpt = "opt/";

void save_checkpoint(const std::string& path, const Tape& tape, const QatGraph& g, const Optimizer& opt, int epochs_done,
                     const QatOptions& o) {
  std::map<std::string, Tensor> a;
  for (auto& w : g.weights) a[kParam + w] = tape.model().graph.initializers.at(w);
  for (auto& st : g.stats) a[kParam + st.first] = tape.model().graph.initializers.at(st.first);
  a["bn_fold"] = Tensor::scalar<int64_t>(o.bn_fold);
  for (auto& fq : g.quantizers) {
    a[kParam + fq.scale] = tape.model().graph.initializers.at(fq.scale);
    a[kParam + fq.offset] = tape.model().graph.initializers.at(fq.offset);
  }
  for (auto& [k, v] : opt.state()) a[kOpt + k] = v;
  a["epochs_done"] = Tensor::scalar<int64_t>(epochs_done);
  a["method"] = Tensor::scalar<int64_t>((int64_t)o.method);
  a["epochs"] = Tensor::scalar<int64_t>(o.epochs);  // the schedule's length: a resumed run must plan the same
  save_npz(path, a);  // written to a temporary file and renamed: never half-written
}

const Tensor& entry(const std::map<std::string, Tensor>& a, const std::string& path, const std::string& k) {
  auto it = a.find(k);
  check(it != a.end(), path, ": not a checkpoint of this training (no '", k, "')");
  return it->second;
}

// The run a checkpoint belongs to must be this one.
void check_checkpoint_meta(const std::map<std::string, Tensor>& a, const std::string& path, const QatOptions& o) {
  check(entry(a, path, "method").to_i64().at(0) == (int64_t)o.method, path,
        ": the checkpoint was trained with another --method");
  int64_t planned = entry(a, path, "epochs").to_i64().at(0);
  check(planned == o.epochs, path, ": the checkpoint belongs to a run of --epochs ", planned, " (the learning-rate "
        "schedule spans them); resume with the same --epochs");
  check(entry(a, path, "bn_fold").to_i64().at(0) == o.bn_fold, path, ": the checkpoint was trained with another --bn-fold");
}

int load_checkpoint(const std::string& path, Tape& tape, const QatGraph& g, Optimizer& opt, const QatOptions& o) {
  auto a = load_npz(path);
  auto get = [&](const std::string& k) -> const Tensor& { return entry(a, path, k); };
  check_checkpoint_meta(a, path, o);
  std::vector<std::string> names = g.weights;
  for (auto& st : g.stats) names.push_back(st.first);
  for (auto& fq : g.quantizers) names.push_back(fq.scale), names.push_back(fq.offset);
  for (auto& n : names) {
    const Tensor& t = get(kParam + n);
    Tensor& p = tape.param(n);
    check(t.shape() == p.shape() && t.dtype() == p.dtype(), path, ": parameter '", n, "' has shape ",
          shape_str(t.shape()), ", the model's ", shape_str(p.shape()));
    p = t.clone();
  }
  std::map<std::string, Tensor> st;
  for (auto& [k, v] : a)
    if (k.rfind(kOpt, 0) == 0) st[k.substr(std::string(kOpt).size())] = v;
  opt.load_state(st);
  return (int)get("epochs_done").to_i64().at(0);
}

}  // namespace

void check_qat_options(const QatOptions& o) {
  check(o.bn_fold >= 0 && o.bn_fold <= 4, "--bn-fold ", o.bn_fold, ": the strategies are 0 to 4 (docs/qat.md)");
  check(o.epochs > 0 && o.batch_size > 0, "QAT: batch size and epochs must be positive");
  if (!o.resume) return;
  check(!o.checkpoint.empty(), "--resume needs a checkpoint path");
  check(std::filesystem::exists(o.checkpoint), "--resume: no checkpoint at '", o.checkpoint, "'");
  check_checkpoint_meta(load_npz(o.checkpoint), o.checkpoint, o);
}

std::vector<EpochLog> train_qat(QatGraph& g, const Tensor& x, const std::vector<int64_t>& labels, const Model* teacher,
                                const QatOptions& o, const std::function<double(const Model&)>& validate,
                                const std::function<void(const QatProgress&)>& progress,
                                const std::function<void(const EpochLog&)>& on_epoch) {
  check(x.rank() >= 1 && x.dim(0) == (int64_t)labels.size(), "QAT: ", labels.size(), " labels for ",
        x.rank() ? x.dim(0) : 0, " training rows");
  check_qat_options(o);
  int64_t rows = x.dim(0);
  int64_t per_epoch = rows / o.batch_size;
  check(per_epoch > 0, "QAT: ", rows, " training rows do not fill one batch of ", o.batch_size);
  if (o.steps_per_epoch > 0) per_epoch = std::min(per_epoch, o.steps_per_epoch);
  int64_t total = per_epoch * o.epochs;
  check(o.distill == 0 || teacher, "QAT: distillation needs the FP32 teacher model");
  check(o.bn_fold == g.bn_fold, "QAT: the options' BatchNorm strategy (", o.bn_fold, ") is not the graph's (", g.bn_fold, ")");
  auto tape_ptr = std::make_unique<Tape>(g.model);
  tape_ptr->set_profiling(o.profile_ops);
  std::map<std::string, Tape::OpTime> carried, prev;  // op times of replaced tapes; totals at the last epoch's end
  auto total_times = [&] {
    auto t = carried;
    for (auto& [op, v] : tape_ptr->op_times()) t[op].forward += v.forward, t[op].backward += v.backward;
    return t;
  };
  // After freeze_bn_step the running statistics stop changing and take the batch statistics' place: strategy 4's
  // BatchNormalizations switch to inference mode; strategies 2 and 3 read the running statistics where they read the
  // batch ones, and the float copies of the layers that computed those go.
  auto freeze = [&]() {
    Model m = tape_ptr->model();
    for (auto& n : m.graph.nodes)
      for (auto& f : g.bn_folds) {
        if (n.name == f.bn) {
          n.set_attr(attr_int("training_mode", 0));
          n.outputs.resize(1);
        }
        for (auto& in : n.inputs) {
          if (!f.batch_mean.empty() && in == f.batch_mean) in = f.mean;
          if (!f.batch_var.empty() && in == f.batch_var) in = f.var_or_inv_std;
        }
      }
    remove_dead_nodes(m.graph);
    carried = total_times();
    tape_ptr = std::make_unique<Tape>(m);
    tape_ptr->set_profiling(o.profile_ops);
  };
  bool frozen = g.stats.empty();
  std::unique_ptr<Executor> teacher_ex;
  if (o.distill > 0) teacher_ex = std::make_unique<Executor>(*teacher);
  Optimizer opt(o.optim);
  int start = 0;
  if (o.resume) {
    start = load_checkpoint(o.checkpoint, *tape_ptr, g, opt, o);
    check(start <= o.epochs, o.checkpoint, ": the checkpoint has ", start, " epochs, more than --epochs ", o.epochs);
  }
  if (!frozen && o.freeze_bn_step > 0 && (int64_t)start * per_epoch >= o.freeze_bn_step) freeze(), frozen = true;
  std::set<std::string> wrt(g.weights.begin(), g.weights.end());
  std::set<std::string> quant(g.quant_params.begin(), g.quant_params.end());
  std::set<std::string> decayed(g.decayed_quant_params.begin(), g.decayed_quant_params.end());
  wrt.insert(quant.begin(), quant.end());
  std::vector<EpochLog> logs;
  using clock = std::chrono::steady_clock;
  for (int epoch = start; epoch < o.epochs; ++epoch) {
    std::vector<int64_t> order((size_t)rows);
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), std::mt19937_64(o.seed * 1000003ULL + (uint64_t)epoch));
    EpochLog log;
    log.epoch = epoch + 1;
    auto t0 = clock::now();
    double loss_sum = 0;
    int64_t correct = 0;
    for (int64_t s = 0; s < per_epoch; ++s) {
      if (!frozen && o.freeze_bn_step > 0 && epoch * per_epoch + s >= o.freeze_bn_step) freeze(), frozen = true;
      Tape& tape = *tape_ptr;
      std::vector<int64_t> idx(order.begin() + s * o.batch_size, order.begin() + (s + 1) * o.batch_size);
      Tensor xb = gather_rows(x, idx);
      std::vector<int64_t> yb;
      for (auto i : idx) yb.push_back(labels[(size_t)i]);
      tape.forward({{g.input, xb}});
      const Tensor& logits = tape.value(g.logits);
      LossResult ce = cross_entropy(logits, yb);
      double loss = ce.loss;
      Tensor grad = ce.grad;
      if (o.distill > 0) {
        Tensor t = teacher_ex->run({{g.input, xb}}, {g.logits}).at(g.logits);
        LossResult kd = distillation(logits, t, o.temperature);
        loss = (1 - o.distill) * ce.loss + o.distill * kd.loss;
        float* pg = grad.data<float>();
        for (int64_t i = 0; i < grad.numel(); ++i)
          pg[i] = (float)((1 - o.distill) * pg[i] + o.distill * kd.grad.data<float>()[i]);
      }
      log.saved_bytes = tape.saved_bytes();
      auto grads = tape.backward({{g.logits, grad}}, wrt);
      double lr = o.optim.lr * o.schedule.factor(epoch * per_epoch + s, total);
      for (auto& [name, gr] : grads) {
        bool is_q = quant.count(name) > 0;
        Tensor& p = tape.param(name);
        Tensor nv = opt.update(name, p, gr, is_q ? lr * o.quant_lr_scale : lr, decayed.count(name) || (!is_q && p.rank() >= 2));
        if (is_q && name.size() > 6 && name.compare(name.size() - 6, 6, "/scale") == 0)
          for (int64_t i = 0; i < nv.numel(); ++i) nv.data<float>()[i] = std::max(nv.data<float>()[i], 1e-8f);
        p = nv;
      }
      if (!frozen)
        for (auto& [param, out] : g.stats) tape.param(param) = tape.value(out).clone();
      loss_sum += loss;
      correct += ce.correct;
      log.steps = s + 1, log.images = (s + 1) * o.batch_size;
      double secs = std::chrono::duration<double>(clock::now() - t0).count();
      if (progress)
        progress({epoch + 1, o.epochs, s + 1, per_epoch, loss_sum / (double)(s + 1), secs > 0 ? log.images / secs : 0});
    }
    log.seconds = std::chrono::duration<double>(clock::now() - t0).count();
    auto now = total_times();
    for (auto& [op, t] : now) log.op_seconds[op] = {t.forward - prev[op].forward, t.backward - prev[op].backward};
    prev = now;
    log.images_per_second = log.seconds > 0 ? (double)log.images / log.seconds : 0;
    log.loss = loss_sum / (double)per_epoch;
    log.train_top1 = 100.0 * (double)correct / (double)log.images;
    if (validate) log.val_top1 = validate(tape_ptr->model());
    if (!o.checkpoint.empty()) save_checkpoint(o.checkpoint, *tape_ptr, g, opt, epoch + 1, o);
    if (on_epoch) on_epoch(log);
    logs.push_back(log);
    if (o.stop_after > 0 && epoch + 1 >= o.stop_after) break;
  }
  g.model = tape_ptr->model();
  return logs;
}

}  // namespace lowbit::train
