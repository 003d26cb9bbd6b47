#include "ptq/pipeline.h"

#include <chrono>
#include <cstdio>

#include "ptq/adaround.h"
#include "ptq/bias_correction.h"
#include "ptq/cle.h"
#include "ptq/data_free.h"

namespace lowbit::ptq {

namespace {

std::string fmt(const char* f, double a, double b = 0, double c = 0) {
  char buf[256];
  std::snprintf(buf, sizeof buf, f, a, b, c);
  return buf;
}

double since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void add_skipped(StepLog& log, const std::vector<std::string>& skipped) {
  for (size_t i = 0; i < skipped.size() && i < 8; ++i) log.lines.push_back("skipped " + skipped[i]);
  if (skipped.size() > 8) log.lines.push_back("... and " + std::to_string(skipped.size() - 8) + " more skipped");
}

}  // namespace

void check_pipeline(const Model& m, const quant::PipelineConfig& p, const std::map<std::string, quant::BnParams>& bn,
                    bool have_data) {
  if (p.data_free) {
    check(bn.empty() == false, "data-free quantization cannot run on '", m.graph.name,
          "': its activation ranges and bias correction come from BatchNormalization statistics, and the model has no "
          "BatchNormalization that folds into a Conv/Gemm; pass --data SPEC to calibrate instead");
    check(!have_data, "--data-free and --data exclude each other");
  }
  if (p.bias_correction == quant::BiasCorrectionKind::Analytical)
    check(!bn.empty(), "analytical bias correction cannot run: it needs the BatchNormalization before each layer, and "
          "the model has none; use empirical bias correction with --data");
  if (p.bias_correction == quant::BiasCorrectionKind::Empirical)
    check(have_data, "empirical bias correction needs calibration data (--data SPEC)");
  if (p.adaround) check(have_data, "AdaRound needs calibration data (--data SPEC)");
}

std::optional<StepLog> run_equalization(Model& m, std::map<std::string, quant::BnParams>& bn, const quant::PipelineConfig& p) {
  if (!p.cle) return std::nullopt;
  auto t0 = std::chrono::steady_clock::now();
  CleOptions o;
  o.high_bias_absorption = p.high_bias_absorption;
  o.relu6 = p.relu6_to_relu ? Relu6Policy::ReplaceWithRelu : Relu6Policy::Skip;
  CleReport r = equalize_model(m, bn, o);
  StepLog log{"cross-layer equalization", since(t0), {}, {}};
  log.lines.push_back(std::to_string(r.pairs) + " layer pairs in " + std::to_string(r.chains) + " chains" +
                      (r.pairs ? fmt(", channel scales %.3g .. %.3g", r.min_scale, r.max_scale) : std::string()));
  if (r.relu6_replaced) log.lines.push_back(std::to_string(r.relu6_replaced) + " ReLU6 replaced by ReLU (as the paper does)");
  if (r.relu6_skipped) log.lines.push_back(std::to_string(r.relu6_skipped) + " pairs joined by ReLU6 left alone (relu6: skip)");
  if (p.high_bias_absorption)
    log.lines.push_back(std::to_string(r.absorbed_pairs) + " pairs absorbed high biases" +
                        (r.absorbed_pairs ? fmt(" (mean %.4g per channel)", r.mean_absorbed) : std::string()));
  return log;
}

std::vector<StepLog> run_weight_steps(Model& m, const quant::QuantSimPlan& plan, const quant::PipelineConfig& p,
                                      const std::map<std::string, quant::BnParams>& bn, const Tensor& samples,
                                      const std::function<void(const std::string&, size_t, size_t)>& progress) {
  std::vector<StepLog> logs;
  // AdaRound writes its rounded weights into m; bias correction after it must compare against the FP32 weights.
  std::optional<Model> fp32;
  if (p.adaround && p.bias_correction != quant::BiasCorrectionKind::None) fp32 = m;
  if (p.adaround) {
    auto t0 = std::chrono::steady_clock::now();
    AdaRoundOptions o;
    o.iterations = p.adaround_iterations;
    o.batch = p.adaround_batch;
    o.reg_weight = (float)p.adaround_reg_weight;
    o.lr = (float)p.adaround_lr;
    o.max_rows = p.adaround_max_rows;
    AdaRoundReport r = adaround_model(m, plan, samples, o, [&](size_t d, size_t t) {
      if (progress) progress("adaround", d, t);
    });
    StepLog log{"AdaRound", since(t0), {}, {}};
    double before = 0, after = 0;
    for (auto& l : r.layers) {
      before += l.loss_nearest;
      after += l.loss_adaround;
      log.lines.push_back(l.name + fmt(": loss %.4g -> %.4g (%.0f weights flipped", l.loss_nearest, l.loss_adaround,
                                       (double)l.changed) +
                          fmt(", %.0f rows, %.1f s)", (double)l.rows, l.seconds) +
                          (l.kept_nearest ? " - kept nearest rounding, which reconstructed better" : ""));
    }
    log.lines.insert(log.lines.begin(), std::to_string(r.layers.size()) + " layers, " +
                                            std::to_string(p.adaround_iterations) + " iterations each" +
                                            fmt(", total reconstruction loss %.4g -> %.4g", before, after));
    add_skipped(log, r.skipped);
    for (auto& sk : r.skipped) {
      auto colon = sk.find(": ");
      log.warnings.push_back("AdaRound skips layer '" + sk.substr(0, colon) + "': " + sk.substr(colon + 2) +
                             "; its weights are rounded to nearest");
    }
    logs.push_back(log);
  }
  if (p.bias_correction != quant::BiasCorrectionKind::None) {
    auto t0 = std::chrono::steady_clock::now();
    bool emp = p.bias_correction == quant::BiasCorrectionKind::Empirical;
    const Model* ref = fp32 ? &*fp32 : nullptr;
    BiasCorrectionReport r = emp ? empirical_bias_correction(m, plan, samples, ref)
                                 : analytical_bias_correction(m, plan, bn, p.input_range, ref);
    StepLog log{emp ? "empirical bias correction" : "analytical bias correction", since(t0), {}, {}};
    log.lines.push_back(std::to_string(r.corrected) + " layers corrected" + fmt(", mean |bias shift| %.4g", r.mean_abs_shift));
    if (fp32)
      log.warnings.push_back("bias correction after AdaRound: the shift is measured against the FP32 weights, and it "
                             "moves pre-activation means that AdaRound's reconstruction leaves alone on purpose, which "
                             "can lower accuracy (the white paper uses one or the other); compare with --bias-correction none");
    add_skipped(log, r.skipped);
    logs.push_back(log);
  }
  return logs;
}

StepLog run_data_free_ranges(const Model& m, quant::QuantSimPlan& plan, const std::map<std::string, quant::BnParams>& bn,
                             const quant::PipelineConfig& p) {
  auto t0 = std::chrono::steady_clock::now();
  auto stats = propagate_statistics(m, bn, p.input_range);
  set_data_free_ranges(m, plan, stats);
  StepLog log{"data-free activation ranges", since(t0), {}, {}};
  int n = 0;
  for (auto& a : plan.acts) n += !a.dynamic;
  log.lines.push_back(std::to_string(n) + " activation ranges from BatchNorm statistics propagated through the graph" +
                      (p.input_range.size() == 2 ? fmt(" (model input range %.4g .. %.4g)", p.input_range[0], p.input_range[1])
                                                 : std::string()));
  return log;
}

}  // namespace lowbit::ptq
