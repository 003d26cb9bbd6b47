// Bias correction (TECHNIQUES.md §5; Nagel et al. 2019): quantizing W to W~ = W + eps shifts the expected output
// of a layer by eps * E[x]; adding -eps * E[x] to the bias removes the shift.
//  - analytical (data-free): E[x] from the folded BatchNorms, the pre-activation of channel c modelled as
//    N(beta_c, gamma_c^2) and passed through the clamp of a ReLU/ReLU6 (clipped-normal mean), and on through
//    residual Adds, Concats and average pooling (propagate_statistics in data_free.h);
//  - empirical: per output channel, the mean of the FP32 model's layer output minus the mean of the quantized
//    model's layer output on calibration data, layer by layer in topological order with the layers before already
//    quantized and corrected (so the shift carried in from earlier layers is corrected too).
#pragma once
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "ptq/layer.h"
#include "quant/fold_bn.h"
#include "quant/quantsim.h"

namespace lowbit::ptq {

// The bias change -eps * E[x] per output channel: eps = w_quant - w (stored layout of `s`), mean_in one value per
// input channel (each column of a conv reads its channel's mean: zero padding is ignored, as in the paper).
std::vector<double> bias_shift(const std::vector<float>& w, const std::vector<float>& w_quant, const LayerShape& s,
                               const std::vector<double>& mean_in);

struct BiasCorrectionReport {
  int corrected = 0;
  double mean_abs_shift = 0;          // mean |bias change| over the corrected channels
  std::vector<std::string> skipped;   // "layer: reason"
};

// Weights are quantized with the plan's weight encodings (compute_weight_encodings first). E[x] comes from the
// statistics of propagate_statistics() (data_free.h); layers whose input mean is not exact there (after a max
// pool, or derived from the assumed-uniform model input) are skipped with the reason.
// `fp32` (optional) is the model before an earlier weight step (AdaRound) replaced m's weights by quantized ones: the
// shift is always measured between the FP32 weights (or the FP32 model's layer outputs) and the quantized weights,
// never between m's already-quantized weights and themselves. Null: m's weights are the FP32 ones.
BiasCorrectionReport analytical_bias_correction(Model& m, const quant::QuantSimPlan& plan,
                                                const std::map<std::string, quant::BnParams>& bn,
                                                const std::vector<float>& input_range = {}, const Model* fp32 = nullptr);
// `samples` is one batch of model input (the whole calibration set for this step).
BiasCorrectionReport empirical_bias_correction(Model& m, const quant::QuantSimPlan& plan, const Tensor& samples,
                                               const Model* fp32 = nullptr);

// The plan's weight quantizers as layers (in node order), with the reason for each weight quantizer that is not a
// layer the PTQ steps handle.
std::vector<std::pair<LinearLayer, const quant::WeightQuantizer*>> planned_layers(
    const Graph& g, const quant::QuantSimPlan& plan, std::vector<std::string>* skipped = nullptr);

// Per-channel mean of a value (channel axis `axis`, negative from the end) and adding a per-channel offset.
std::vector<double> channel_means(const Tensor& v, int axis);
Tensor add_per_channel(const Tensor& v, int axis, const std::vector<double>& delta);

}  // namespace lowbit::ptq
