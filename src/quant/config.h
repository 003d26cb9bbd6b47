// Quantization configuration as data (JSON). Defaults follow the white paper: symmetric per-channel int8
// weights, asymmetric per-tensor uint8 activations, min-max ranges, round half to even.
//
// {
//   "weights":     {"bits": 8, "symmetric": true,  "signed": true,  "granularity": "per_channel", "range": "minmax"},
//   "activations": {"bits": 8, "symmetric": false, "signed": false, "granularity": "per_tensor",  "range": "minmax"},
//   "mode": "static",                 // static | weight_only | dynamic | fp16
//   "quantize_model_input": true,
//   "concat": "requantize",          // requantize | shared_scale (all Concat inputs take the output's encoding)
//   "overrides": [ {"node": "conv1", "weight_bits": 16}, {"op_type": "Softmax", "skip": true},
//                  {"tensor": "logits", "activation_bits": 16, "range": "mse"} ],
//   "int32_bias": false              // store Conv/Gemm biases as int32 with scale s_x * s_w (as integer runtimes need)
// }
// Quantizer fields: bits (2..16), symmetric, signed (true | false | "auto": activations, see TensorQuant), narrow, granularity (per_tensor | per_channel | per_group),
// group_size, scale ("float" | "power_of_two"), rounding ("half_even" | "half_away"), range (minmax | ema |
// percentile | mse | kl | cross_entropy | bn), percentile (e.g. 99.99), ema_momentum.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "quant/encoding.h"

namespace lowbit::quant {

// CrossEntropy: for [batch, classes] logits, the range minimising H(softmax(v), softmax(v_hat)) over the data.
// Bn: data-free, [min(beta - 6|gamma|), max(beta + 6|gamma|)] for values right after a (folded) BatchNormalization,
// clamped by a following ReLU/Clip; values without a BatchNormalization in front use min-max on the data.
enum class RangeMethod { MinMax, Ema, Percentile, Mse, Kl, CrossEntropy, Bn };
enum class Mode { Static, WeightOnly, Dynamic, Fp16 };

struct TensorQuant {
  QuantizerSpec spec;
  RangeMethod range = RangeMethod::MinMax;
  double percentile = 99.99;
  double ema_momentum = 0.01;
  // "signed": "auto" (activations, symmetric only; NNCF's rule): each tensor's grid is chosen from its calibration
  // data by resolve_auto_sign: signed when the data go below zero, else unsigned with zero point 0.
  bool signed_auto = false;
};

// Settles "signed": "auto" for one tensor whose smallest calibration value is data_min: a tensor with data_min >= 0
// gets the white paper's unsigned symmetric grid, [0, 2^b - 1] with zero point 0 (written as the asymmetric formula,
// which gives z = 0 on a range starting at 0), so a one-tailed tensor (after ReLU) keeps all 2^b codes; otherwise the
// signed symmetric grid stays. No-op without "auto"; clears the flag.
void resolve_auto_sign(TensorQuant& q, float data_min);

struct Override {
  std::string node, op_type, tensor;  // exactly one is set
  bool skip = false;                  // node: leave it in float (no weight quantizer, no output quantizer)
  std::optional<int> weight_bits, activation_bits;
  std::optional<RangeMethod> range;  // activation range method for the matched tensor / node outputs
};

// The white paper's PTQ steps (ptq/): which run and how. "pipeline": {"cle": true, "high_bias_absorption": true,
// "relu6": "relu" | "skip", "bias_correction": "none" | "empirical" | "analytical", "adaround": true,
// "adaround_iterations": 1000, "adaround_batch": 256, "adaround_reg_weight": 0.01, "adaround_lr": 0.01,
// "adaround_max_rows": 8192, "samples": 256, "data_free": false, "input_range": [0, 1], "logits_cross_entropy": false}.
enum class BiasCorrectionKind { None, Empirical, Analytical };
struct PipelineConfig {
  bool cle = false, high_bias_absorption = true, relu6_to_relu = true;
  BiasCorrectionKind bias_correction = BiasCorrectionKind::None;
  bool adaround = false;
  int adaround_iterations = 1000, adaround_batch = 256;
  double adaround_reg_weight = 0.01, adaround_lr = 0.01;
  int64_t adaround_max_rows = 8192;
  int64_t samples = 256;  // calibration samples kept in memory for empirical bias correction and AdaRound
  bool data_free = false; // no data: BN-propagated activation ranges, analytical bias correction
  std::vector<float> input_range;  // data-free: the model input's value range [lo, hi]
  // With data and MSE activation ranges: cross-entropy ranges for every 2-D float graph output (the logits).
  bool logits_cross_entropy = false;
};
const char* bias_correction_name(BiasCorrectionKind k);
BiasCorrectionKind parse_bias_correction(const std::string& s);

// Where activation quantizers sit (a hardware profile's rules; the defaults are lowbit's own). JSON "placement":
// {"activations": "outputs" | "layer_inputs", "fused_activations": ["Relu", "Clip"], "pass_through": [...],
//  "float_ops": [...], "add": "requantize" | "fuse_into_conv"}.
//   outputs:      a quantizer on every float tensor between kernels: each node's outputs, except a fused
//                 activation's input and pass-through ops' outputs (they keep their input's grid);
//   layer_inputs: MQBench's academic setting: only the inputs of Conv/ConvTranspose/Gemm/MatMul layers (and weights);
//   float_ops:    op types that stay in float (no weight or output quantizer), as a target that does not run them
//                 in integers;
//   fuse_into_conv: a Conv/Gemm/MatMul output read only by an Add gets no quantizer: the target adds the residual
//                 into the layer's 32-bit accumulator (TensorRT) and quantizes the Add's output.
enum class ActPlacement { Outputs, LayerInputs };
struct Placement {
  ActPlacement activations = ActPlacement::Outputs;
  std::vector<std::string> fused_activations = {"Relu", "Clip"};
  std::vector<std::string> pass_through = {"Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze", "MaxPool",
                                           "GlobalMaxPool", "Identity", "Dropout", "Slice", "Split", "Gather",
                                           "Expand", "Tile", "DepthToSpace", "SpaceToDepth"};
  std::vector<std::string> float_ops;
  bool fuse_add_into_conv = false;
};

struct QuantConfig {
  TensorQuant weights, activations;
  Mode mode = Mode::Static;
  bool quantize_model_input = true;
  bool concat_shared_scale = false;
  bool int32_bias = false;
  std::vector<Override> overrides;
  PipelineConfig pipeline;
  Placement placement;
};

// The white paper's standard pipeline (Fig. 8) over `c`: CLE (+ high-bias absorption), symmetric MSE weight ranges,
// AdaRound with data or analytical bias correction without, MSE activation ranges (cross-entropy for 2-D outputs:
// the logits, as pipeline.logits_cross_entropy), or data-free ranges.
void apply_standard_pipeline(QuantConfig& c, bool have_data);

QuantConfig default_config();
// Parses JSON over `base` (the defaults, or a hardware profile's config); throws Error naming `origin` and the
// offending key.
QuantConfig parse_config(const std::string& json_text, const std::string& origin, const QuantConfig& base = default_config());
// The config as JSON that parse_config reads back to the same config.
std::string config_to_json(const QuantConfig& c);
const char* range_method_name(RangeMethod m);
RangeMethod parse_range_method(const std::string& s);

}  // namespace lowbit::quant
