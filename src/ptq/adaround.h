// AdaRound (TECHNIQUES.md §6; Nagel et al. 2020): per layer, learn whether each weight rounds down or up.
//
//   W~ = s * (clamp(floor(W / s) + h(V) + z, qmin, qmax) - z),   h(V) = clamp(sigmoid(V) * (zeta - gamma) + gamma, 0, 1)
//   loss = mean over rows of sum over output channels (f_a(W~ x~ + b) - f_a(W x + b))^2 + lambda * sum (1 - |2h - 1|^beta)
//
// with zeta = 1.1, gamma = -0.1, x the FP32 model's input to the layer and x~ the input produced by the model whose
// earlier layers are already rounded (asymmetric reconstruction), f_a the layer's fused ReLU/clip. beta anneals
// linearly from beta_start to beta_end after a warm-up without the regulariser; Adam on V; at the end h is rounded
// to {0, 1}. The scale s (and zero point) stay as the weight encoding set them.
//
// A "row" is one K-vector of layer input: an im2col column at one output position of one sample for Conv, one row
// of the input for Gemm/MatMul. Rows are sampled (samples x positions, capped) so memory stays flat.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "ptq/layer.h"
#include "quant/quantsim.h"

namespace lowbit::ptq {

struct AdaRoundOptions {
  int iterations = 1000;
  int batch = 256;               // rows per Adam step
  float reg_weight = 0.01f;      // lambda
  float beta_start = 20.f, beta_end = 2.f;
  float warmup = 0.2f;           // fraction of iterations without the regulariser
  float lr = 1e-2f;
  int64_t max_rows = 8192;       // cached rows per layer (samples x positions)
  int64_t max_cache_floats = int64_t(16) << 20;  // and at most this many cached floats (64 MiB) per layer
  uint32_t seed = 0;
};

// One layer's problem over plain arrays. Weights in canonical [out_channels][k] order (output channel o, column k).
struct AdaRoundProblem {
  LayerShape shape;
  std::vector<float> w;             // [O][K]
  std::vector<float> bias;          // [O]
  std::vector<float> scale;         // per slice
  std::vector<int32_t> zero_point;  // per slice
  std::vector<int32_t> slice;       // [O][K] -> slice of its encoding
  int32_t qmin = -128, qmax = 127;
  Activation act;
  int64_t rows = 0;
  std::vector<float> x;             // [rows][groups][K]: the layer's input rows (from the quantized model)
  std::vector<float> target;        // [rows][O]: f_a(W x + b) of the FP32 model
};

float rectified_sigmoid(float v);
// V such that h(V) = W/s - floor(W/s).
std::vector<float> adaround_init(const AdaRoundProblem& p);
// W~ for V ([O][K]); hard = h rounded to {0, 1} (V >= 0 rounds up).
std::vector<float> adaround_weights(const AdaRoundProblem& p, const std::vector<float>& v, bool hard);
// Weights rounded to nearest (the baseline AdaRound must beat), [O][K].
std::vector<float> nearest_weights(const AdaRoundProblem& p);

// Reconstruction term over `rows` (indices into the cached rows) for given weights [O][K].
double reconstruction_loss(const AdaRoundProblem& p, const std::vector<float>& w, const std::vector<int64_t>& rows);
// Total loss for V and its gradient with respect to V (if grad != nullptr).
struct AdaRoundLoss {
  double recon = 0, reg = 0;
};
AdaRoundLoss adaround_loss(const AdaRoundProblem& p, const std::vector<float>& v, const std::vector<int64_t>& rows,
                           float beta, float lambda, std::vector<float>* grad);

struct AdaRoundResult {
  std::vector<float> w;            // final W~ [O][K], on the integer grid
  double loss_nearest = 0, loss_adaround = 0;  // reconstruction over all cached rows
  int64_t rounded_up_changed = 0;  // weights whose rounding differs from nearest
  bool kept_nearest = false;       // the learned rounding reconstructed worse than nearest on the cached rows
};
// Optimizes V and returns the hard-rounded weights, or the nearest-rounded ones when those reconstruct the cached rows
// better (a schedule too short to converge must not make a layer worse).
AdaRoundResult adaround_layer(const AdaRoundProblem& p, const AdaRoundOptions& opt);

// The graph pass: every planned weight of a Conv/Gemm/MatMul, in topological order. Writes W~ into the model's
// weight initializers (build_quantized_model then reproduces the same integers); other weight quantizers are
// skipped with the reason in the report. `samples` is one batch of model input.
struct AdaRoundLayerReport {
  std::string name;
  int64_t rows = 0;
  double loss_nearest = 0, loss_adaround = 0, seconds = 0;
  int64_t changed = 0;
  bool kept_nearest = false;
};
struct AdaRoundReport {
  std::vector<AdaRoundLayerReport> layers;
  std::vector<std::string> skipped;  // "layer: reason"
};
AdaRoundReport adaround_model(Model& m, const quant::QuantSimPlan& plan, const Tensor& samples, const AdaRoundOptions& opt,
                              const std::function<void(size_t done, size_t total)>& progress = {});

}  // namespace lowbit::ptq
