// The white paper's quantization debugging flow (Fig. 9; TECHNIQUES.md §8) as library calls:
//  1. FP32 sanity: with every quantizer bypassed the prepared model reproduces the FP32 model (else Error);
//  2. weights-only vs activations-only quantization;
//  3. per-quantizer sensitivity: each quantizer alone (all else FP32), and all quantizers but that one;
//  4. SQNR of every quantized weight and activation against FP32 (activations on a calibration batch, so the
//     error accumulated from earlier layers is included);
//  5. per-channel ranges and histograms of the worst tensors;
//  6. recommendations, and optionally a mixed-precision fix: raise the most sensitive quantizers (in order of
//     sensitivity, the shortest prefix) until the drop is within a target.
#pragma once
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "analysis/gap.h"
#include "analysis/quantsim_runner.h"
#include "quant/config.h"

namespace lowbit::analysis {

enum class Metric { Accuracy, Sqnr };  // top-1 % on labelled data, or SQNR (dB) of the outputs against FP32

struct EvalSet {
  Tensor x;                     // [n, ...] model input
  std::vector<int64_t> labels;  // n labels (accuracy)
};

struct AnalyzeOptions {
  Metric metric = Metric::Accuracy;
  std::optional<double> target_drop;  // mixed-precision fix target (accuracy points)
  int raise_bits = 0;                 // bits for raised quantizers; 0: 8 below 8 bits, else 16
  int plots = 3;                      // worst weights / activations plotted
  int64_t sqnr_samples = 16;          // calibration samples for activation SQNR and histograms
};

struct QuantizerResult {
  Quantizer q;
  int bits = 8;
  double alone = 0;     // metric with only this quantizer on
  double all_but = 0;   // metric with every quantizer but this one
  double sqnr_db = 0;   // against FP32 (weights: the tensor itself; activations: the calibration batch)
  // The ranking measure: SQNR (dB) of the model's first output against the FP32 output on the evaluation data, with
  // only this quantizer on / with every quantizer but this one. Continuous, so it separates quantizers whose top-1
  // differences are a few images (sampling noise) or nothing at all.
  double output_sqnr_alone_db = 0, output_sqnr_all_but_db = 0;
};

struct ChannelPlot {  // per-channel [min, max] of a tensor and the per-tensor quantization range
  std::string label;
  std::vector<float> lo, hi;
  float grid_lo = 0, grid_hi = 0;
};
struct HistogramPlot {  // FP32 values of an activation on the calibration batch, and its quantization range
  std::string label;
  double lo = 0, hi = 0;
  std::vector<int64_t> counts;
  double grid_lo = 0, grid_hi = 0;
};

struct Recommendation {
  std::string severity;  // "high", "medium", "info"
  std::string text;
};

struct MixedPrecisionStep {
  std::string raised;  // label of the quantizer raised at this step
  int bits = 16;       // its new bit width
  double metric = 0;   // metric with it and every earlier one raised
};
struct MixedPrecisionFix {
  double target_drop = 0;
  std::vector<MixedPrecisionStep> steps;
  bool met = false;
  std::vector<quant::Override> overrides;  // the raised quantizers, as config overrides
};

struct Report {
  Metric metric = Metric::Accuracy;
  int64_t eval_samples = 0, calib_samples = 0;
  double sanity_max_rel_error = 0;
  double fp32 = 0, quantized = 0, weights_only = 0, activations_only = 0;
  std::vector<QuantizerResult> quantizers;  // by severity: lowest output_sqnr_alone_db first
  // Accuracy metric: half-width (points) of the 95% binomial interval of a top-1 accuracy at the FP32 accuracy on
  // eval_samples images, 1.96 * sqrt(p (1 - p) / n); accuracy differences below it are within sampling noise.
  double accuracy_noise_points = 0;
  std::vector<ChannelPlot> channel_plots;
  std::vector<HistogramPlot> histograms;
  std::vector<Recommendation> recommendations;
  std::optional<MixedPrecisionFix> fix;
  // With a hardware profile: the QDQ model's simulation against the integer engine on the evaluation data.
  std::optional<ProfileGap> gap;
};

const char* metric_name(Metric m);

// `fp32`: the model as loaded; `prepared`: after prepare_for_quantization; `plan`: every encoding set (calibrated).
// `progress(step, done, total)` reports long steps.
Report analyze(const Model& fp32, const Model& prepared, const quant::QuantSimPlan& plan, const quant::QuantConfig& cfg,
               const Tensor& calib, const EvalSet& eval, const AnalyzeOptions& opt,
               const std::function<void(const std::string&, size_t, size_t)>& progress = {});

}  // namespace lowbit::analysis
