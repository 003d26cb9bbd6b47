#include "analysis/analyze.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "ptq/layer.h"

namespace lowbit::analysis {

namespace {

double sqnr_db(const float* ref, const float* x, int64_t n) {
  double sig = 0, err = 0;
  for (int64_t i = 0; i < n; ++i) {
    sig += (double)ref[i] * ref[i];
    err += ((double)ref[i] - x[i]) * ((double)ref[i] - x[i]);
  }
  if (err == 0) return 200.0;  // identical: reported as 200 dB rather than infinity
  return 10.0 * std::log10(std::max(sig, 1e-30) / err);
}

double round_to(double v, double step) { return std::round(v / step) * step; }

// Evaluates settings on the eval set in one pass: the metric (accuracy, or SQNR of the first output against the
// FP32 outputs) and the output SQNR against FP32 (the ranking measure).
class Evaluator {
 public:
  struct Result {
    double metric = 0, output_sqnr_db = 0;
  };
  Evaluator(const QuantSimRunner& r, const EvalSet& e, Metric m) : r_(r), e_(e), m_(m) { ref_ = outputs(r_.all(false)); }
  Result operator()(const QuantSimRunner::Setting& s) const {
    Tensor y = outputs(s);
    Result res;
    res.output_sqnr_db = round_to(sqnr_db(ref_.data<float>(), y.data<float>(), y.numel()), 0.01);
    if (m_ == Metric::Sqnr) {
      res.metric = res.output_sqnr_db;
      return res;
    }
    check(y.rank() == 2, "accuracy needs [batch, classes] outputs; the model gives ", shape_str(y.shape()),
          " (use --metric sqnr)");
    int64_t n = y.dim(0), right = 0;
    for (int64_t i = 0; i < n; ++i) {
      const float* p = y.data<float>() + i * y.dim(1);
      right += (std::max_element(p, p + y.dim(1)) - p) == e_.labels[(size_t)i];
    }
    res.metric = round_to(100.0 * (double)right / (double)n, 0.01);
    return res;
  }

 private:
  // The first output over the whole eval set, batch by batch.
  Tensor outputs(const QuantSimRunner::Setting& s) const {
    auto ex = r_.executor(s);
    std::vector<Tensor> parts;
    for (int64_t b0 = 0; b0 < e_.x.dim(0); b0 += kBatch)
      parts.push_back(ex->run({{r_.input_name(), e_.x.slice_rows(b0, std::min(e_.x.dim(0), b0 + kBatch))}}).begin()->second);
    return concat_rows(parts);
  }
  static constexpr int64_t kBatch = 250;
  const QuantSimRunner& r_;
  const EvalSet& e_;
  Metric m_;
  Tensor ref_;
};

// Channel axis of an activation for plots: 1 for [N, C, ...] and [N, C]; the last for [N, T, C].
int act_channel_axis(const Tensor& v) { return v.rank() == 3 ? 2 : 1; }

ChannelPlot channel_ranges(const std::string& label, const float* x, const Shape& s, int axis, float glo, float ghi) {
  ChannelPlot p{label, {}, {}, glo, ghi};
  int64_t C = s[(size_t)axis], inner = 1;
  for (size_t i = (size_t)axis + 1; i < s.size(); ++i) inner *= s[i];
  int64_t outer = shape_numel(s) / std::max<int64_t>(1, C * inner);
  p.lo.assign((size_t)C, INFINITY);
  p.hi.assign((size_t)C, -INFINITY);
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t i = 0; i < inner; ++i) {
        float v = x[(o * C + c) * inner + i];
        p.lo[(size_t)c] = std::min(p.lo[(size_t)c], v);
        p.hi[(size_t)c] = std::max(p.hi[(size_t)c], v);
      }
  return p;
}

std::pair<float, float> grid_range(const quant::Encoding& e) {
  float lo = INFINITY, hi = -INFINITY;
  for (int64_t i = 0; i < e.num_slices(); ++i) {
    lo = std::min(lo, e.scale[(size_t)i] * (float)(e.spec.grid.qmin() - e.zero_point[(size_t)i]));
    hi = std::max(hi, e.scale[(size_t)i] * (float)(e.spec.grid.qmax() - e.zero_point[(size_t)i]));
  }
  return {lo, hi};
}

}  // namespace

const char* metric_name(Metric m) { return m == Metric::Accuracy ? "top-1 accuracy (%)" : "output SQNR (dB)"; }

Report analyze(const Model& fp32, const Model& prepared, const quant::QuantSimPlan& plan, const quant::QuantConfig& cfg,
               const Tensor& calib, const EvalSet& eval, const AnalyzeOptions& opt,
               const std::function<void(const std::string&, size_t, size_t)>& progress) {
  Report rep;
  rep.metric = opt.metric;
  rep.eval_samples = eval.x.dim(0);
  rep.calib_samples = calib.dim(0);
  check(opt.metric == Metric::Sqnr || (int64_t)eval.labels.size() == eval.x.dim(0),
        "the accuracy metric needs labelled evaluation data (or use --metric sqnr)");
  check(!opt.target_drop || opt.metric == Metric::Accuracy, "--target-drop is in accuracy points: use --metric accuracy");
  check(cfg.mode == quant::Mode::Static || cfg.mode == quant::Mode::WeightOnly,
        "lowbit analyze ranks integer quantizers: it supports the static and weight_only modes (the config says ",
        cfg.mode == quant::Mode::Dynamic ? "dynamic" : "fp16", ")");
  QuantSimRunner runner(prepared, plan, cfg.mode);
  const auto& qs = runner.quantizers();
  check(!qs.empty(), "the plan has no quantizers to analyze");
  Tensor probe = calib.slice_rows(0, std::min<int64_t>(calib.dim(0), opt.sqnr_samples));

  // 1. FP32 sanity: every quantizer bypassed == the FP32 model.
  {
    Tensor a = Executor(fp32).run({{runner.input_name(), probe}}).begin()->second;
    Tensor b = runner.executor(runner.all(false))->run({{runner.input_name(), probe}}).begin()->second;
    check(a.shape() == b.shape(), "FP32 sanity check failed: output shapes differ");
    double peak = 0, err = 0;
    for (int64_t i = 0; i < a.numel(); ++i) {
      peak = std::max(peak, (double)std::fabs(a.data<float>()[i]));
      err = std::max(err, (double)std::fabs(a.data<float>()[i] - b.data<float>()[i]));
    }
    rep.sanity_max_rel_error = err / std::max(peak, 1e-30);
    check(rep.sanity_max_rel_error < 1e-3, "FP32 sanity check failed: with every quantizer bypassed the model differs "
          "from the FP32 model by ", rep.sanity_max_rel_error, " (relative); BatchNorm or constant folding changed the function");
  }
  Evaluator eval_metric(runner, eval, opt.metric);
  size_t total = 4 + 2 * qs.size(), done = 0;
  auto tick = [&](const char* what) {
    if (progress) progress(what, ++done, total);
  };
  // 2. FP32, all quantized, weights only, activations only.
  auto setting = runner.all(false);
  rep.fp32 = opt.metric == Metric::Sqnr ? 200.0 : eval_metric(setting).metric;
  if (opt.metric == Metric::Accuracy) {
    double p = rep.fp32 / 100.0, n = (double)std::max<int64_t>(1, rep.eval_samples);
    rep.accuracy_noise_points = round_to(100.0 * 1.96 * std::sqrt(p * (1 - p) / n), 0.01);
  }
  tick("analyze");
  rep.quantized = eval_metric(runner.all(true)).metric;
  tick("analyze");
  for (size_t i = 0; i < qs.size(); ++i) setting.on[i] = qs[i].weight;
  rep.weights_only = eval_metric(setting).metric;
  tick("analyze");
  for (size_t i = 0; i < qs.size(); ++i) setting.on[i] = !qs[i].weight;
  rep.activations_only = eval_metric(setting).metric;
  tick("analyze");
  // 3. Per quantizer, alone and left out.
  for (size_t i = 0; i < qs.size(); ++i) {
    QuantizerResult r;
    r.q = qs[i];
    r.bits = qs[i].weight ? plan.weights[qs[i].index].enc.spec.grid.bits : plan.acts[qs[i].index].enc.spec.grid.bits;
    auto alone = runner.all(false);
    alone.on[i] = 1;
    auto a = eval_metric(alone);
    r.alone = a.metric;
    r.output_sqnr_alone_db = a.output_sqnr_db;
    tick("analyze");
    auto but = runner.all(true);
    but.on[i] = 0;
    auto b = eval_metric(but);
    r.all_but = b.metric;
    r.output_sqnr_all_but_db = b.output_sqnr_db;
    tick("analyze");
    rep.quantizers.push_back(r);
  }
  // 4. SQNR against FP32. Weights: the tensor; activations: the calibration probe, all quantizers on.
  std::map<std::string, Tensor> ref_acts, q_acts;
  runner.executor(runner.all(false), [&](const std::string& t, const Tensor& v) { ref_acts[t] = v.clone(); })
      ->run({{runner.input_name(), probe}});
  runner.executor(runner.all(true), [&](const std::string& t, const Tensor& v) { q_acts[t] = v.clone(); })
      ->run({{runner.input_name(), probe}});
  for (auto& r : rep.quantizers) {
    if (r.q.weight) {
      const auto& wq = plan.weights[r.q.index];
      const Tensor& w = prepared.graph.initializers.at(wq.tensor);
      std::vector<float> f((size_t)w.numel());
      quant::fake_quantize(w.data<float>(), f.data(), wq.enc);
      r.sqnr_db = round_to(sqnr_db(w.data<float>(), f.data(), w.numel()), 0.01);
    } else if (ref_acts.count(r.q.tensor) && q_acts.count(r.q.tensor)) {
      const Tensor& a = ref_acts.at(r.q.tensor);
      r.sqnr_db = round_to(sqnr_db(a.data<float>(), q_acts.at(r.q.tensor).data<float>(), a.numel()), 0.01);
    }
  }
  std::stable_sort(rep.quantizers.begin(), rep.quantizers.end(), [](const QuantizerResult& a, const QuantizerResult& b) {
    // Lowest output fidelity alone first; then the larger gain when left out; then the tensor's own SQNR.
    if (a.output_sqnr_alone_db != b.output_sqnr_alone_db) return a.output_sqnr_alone_db < b.output_sqnr_alone_db;
    if (a.output_sqnr_all_but_db != b.output_sqnr_all_but_db) return a.output_sqnr_all_but_db > b.output_sqnr_all_but_db;
    return a.sqnr_db < b.sqnr_db;
  });
  // 5. Plots of the worst weights and activations.
  int wplots = 0, aplots = 0;
  for (auto& r : rep.quantizers) {
    if (r.q.weight && wplots < opt.plots) {
      const auto& wq = plan.weights[r.q.index];
      int ni = -1;
      for (int i = 0; i < (int)prepared.graph.nodes.size(); ++i)
        if (prepared.graph.nodes[(size_t)i].name == wq.node) ni = i;
      auto l = ni >= 0 ? ptq::linear_layer(prepared.graph, ni) : std::nullopt;
      if (!l) continue;
      auto w = ptq::get_weight(prepared.graph, *l);
      std::vector<float> canon;  // [O][K]
      for (int64_t o = 0; o < l->shape.out_channels; ++o)
        for (int64_t k = 0; k < l->shape.k(); ++k) canon.push_back(w[(size_t)l->shape.index(o, k)]);
      auto [glo, ghi] = grid_range(wq.enc);
      rep.channel_plots.push_back(channel_ranges("weight of " + wq.node + " (per output channel)", canon.data(),
                                                 {l->shape.out_channels, l->shape.k()}, 0, glo, ghi));
      ++wplots;
    } else if (!r.q.weight && aplots < opt.plots && ref_acts.count(r.q.tensor)) {
      const Tensor& a = ref_acts.at(r.q.tensor);
      auto [glo, ghi] = grid_range(plan.acts[r.q.index].enc);
      if (a.rank() >= 2)
        rep.channel_plots.push_back(channel_ranges("activation '" + r.q.tensor + "' (per channel)", a.data<float>(),
                                                   a.shape(), act_channel_axis(a), glo, ghi));
      HistogramPlot h{"activation '" + r.q.tensor + "'", INFINITY, -INFINITY, std::vector<int64_t>(64, 0), glo, ghi};
      for (int64_t i = 0; i < a.numel(); ++i) {
        h.lo = std::min(h.lo, (double)a.data<float>()[i]);
        h.hi = std::max(h.hi, (double)a.data<float>()[i]);
      }
      double width = std::max(h.hi - h.lo, 1e-12) / 64.0;
      for (int64_t i = 0; i < a.numel(); ++i)
        ++h.counts[(size_t)std::min<int64_t>(63, (int64_t)((a.data<float>()[i] - h.lo) / width))];
      rep.histograms.push_back(h);
      ++aplots;
    }
  }
  // 6. Recommendations.
  auto loss = [&](double v) { return opt.metric == Metric::Accuracy ? rep.fp32 - v : -v; };
  auto add = [&](const char* sev, const std::string& t) { rep.recommendations.push_back({sev, t}); };
  char buf[512];
  const QuantizerResult& worst = rep.quantizers.front();
  bool acc = opt.metric == Metric::Accuracy;
  if (acc && rep.fp32 - rep.quantized <= 0.5) add("info", "The quantized model is within 0.5 points of FP32: no fix needed.");
  if (loss(rep.weights_only) > loss(rep.activations_only)) {
    std::snprintf(buf, sizeof buf, "Weights lose more than activations (weights only: %.2f, activations only: %.2f).",
                  rep.weights_only, rep.activations_only);
    add("high", buf);
    if (cfg.weights.spec.granularity == quant::Granularity::PerTensor)
      add("high", "Per-tensor weights: use per-channel weights (--per-channel) where the target allows, or "
                  "cross-layer equalization (--cle), which evens out the channel ranges per-tensor quantization suffers from.");
    if (cfg.weights.spec.grid.bits <= 4)
      add("high", "Low-bit weights: AdaRound (--adaround) or the whole standard pipeline (--pipeline standard).");
    else
      add("medium", "Empirical bias correction (--bias-correction empirical) removes the output shift weight rounding causes.");
    if (cfg.weights.range == quant::RangeMethod::MinMax)
      add("medium", "MSE weight ranges (--weight-range mse) clip outliers that stretch a min-max grid.");
  } else {
    std::snprintf(buf, sizeof buf, "Activations lose more than weights (activations only: %.2f, weights only: %.2f).",
                  rep.activations_only, rep.weights_only);
    add("high", buf);
    if (cfg.activations.range == quant::RangeMethod::MinMax)
      add("high", "Min-max activation ranges are set by outliers: try --range mse or percentile (and cross-entropy for the logits, as --pipeline standard does).");
  }
  if (acc) {
    std::snprintf(buf, sizeof buf, "Accuracy differences smaller than %.2f points are within sampling noise on these %lld "
                  "images (95%% binomial interval at the FP32 accuracy); quantizers are ranked by output SQNR against "
                  "FP32, which does not depend on a few images flipping.", rep.accuracy_noise_points,
                  (long long)rep.eval_samples);
    add("info", buf);
  }
  std::snprintf(buf, sizeof buf, "Most sensitive quantizer: %s (%d-bit): alone its output SQNR is %.2f dB and the metric "
                "%.2f (FP32 %.2f); leaving it in higher precision gives %.2f (all quantized: %.2f).",
                worst.q.label().c_str(), worst.bits, worst.output_sqnr_alone_db, worst.alone, rep.fp32, worst.all_but,
                rep.quantized);
  add(loss(worst.alone) > 1.0 ? "high" : "info", buf);
  // Mixed-precision fix.
  if (opt.target_drop) {
    MixedPrecisionFix fix;
    fix.target_drop = *opt.target_drop;
    std::vector<size_t> order;
    for (auto& r : rep.quantizers)
      for (size_t i = 0; i < qs.size(); ++i)
        if (qs[i].weight == r.q.weight && qs[i].index == r.q.index) order.push_back(i);
    auto s = runner.all(true);
    double current = rep.quantized;
    fix.met = rep.fp32 - current <= fix.target_drop;
    for (size_t k = 0; k < order.size() && !fix.met; ++k) {
      size_t i = order[k];
      int cur = rep.quantizers[k].bits;
      int b = opt.raise_bits > 0 ? opt.raise_bits : (cur < 8 ? 8 : 16);
      s.bits[i] = b;
      current = eval_metric(s).metric;
      fix.steps.push_back({qs[i].label(), b, current});
      quant::Override o;
      if (qs[i].weight) {
        o.node = qs[i].node;
        o.weight_bits = b;
      } else {
        o.tensor = qs[i].tensor;
        o.activation_bits = b;
      }
      fix.overrides.push_back(o);
      fix.met = rep.fp32 - current <= fix.target_drop;
      if (progress) progress("mixed precision", k + 1, order.size());
    }
    std::snprintf(buf, sizeof buf, "Mixed precision: raising %zu quantizer%s %s a drop of %.2f points (target %.2f).",
                  fix.overrides.size(), fix.overrides.size() == 1 ? "" : "s", fix.met ? "gives" : "still leaves",
                  rep.fp32 - current, fix.target_drop);
    add(fix.met ? "info" : "high", buf);
    rep.fix = fix;
  }
  return rep;
}

}  // namespace lowbit::analysis
