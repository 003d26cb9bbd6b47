// Quantization simulation as a graph transform (placement rules, calibration, QDQ graph construction).
//
// Placement (after BatchNormalization folding):
//  - weights of Conv / ConvTranspose / Gemm / MatMul (constant float input 1) get a weight quantizer, per-channel
//    along the output-channel axis (Conv 0, ConvTranspose 1, Gemm 0 if transB else 1, MatMul last);
//  - every float output of a node gets an activation quantizer, except outputs whose only reader is Relu/Clip
//    (the activation is fused: the quantizer follows the activation), values inside decomposed LayerNorm and GELU
//    patterns (only the pattern's output is quantized), and outputs of pass-through ops
//    (Reshape, Flatten, Transpose, Squeeze, Unsqueeze, MaxPool, Identity, Slice, ...), which keep their input's grid;
//  - float model inputs are quantized unless the config says otherwise; nodes an override skips stay in float.
// The result is an ONNX QDQ graph: Q(uint8/int8) -> DQ for grids of up to 8 bits (plus a Clip after DQ when the
// grid is narrower than the container, which makes the simulation exact), and Div/Round/Add/Clip/Sub/Mul in
// float for 9..16 bits. Weights are stored as integers with a (per-axis) DequantizeLinear, except per-group and
// >8-bit weights, which are stored already fake-quantized in float.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "quant/config.h"
#include "quant/fold_bn.h"

namespace lowbit::quant {

struct ActQuantizer {
  std::string tensor;
  TensorQuant q;
  bool dynamic = false;  // quantized per batch at run time (DynamicQuantizeLinear)
  Encoding enc;          // filled by calibrate()
};

struct WeightQuantizer {
  std::string node, tensor;
  TensorQuant q;
  Encoding enc;  // filled by compute_weight_encodings()
};

struct QuantSimPlan {
  std::vector<ActQuantizer> acts;
  std::vector<WeightQuantizer> weights;
  Placement placement;  // the rules the quantizers were placed by (pass-through and fused ops for later passes)
};

// Decides where quantizers go. The model must have had its BatchNormalizations folded (fold_batch_norms).
// Throws Error when an override names a node, op type or tensor the model does not have.
QuantSimPlan plan_quantizers(const Model& m, const QuantConfig& cfg);

// Streams calibration batches (next() returns false at the end) through the float model and sets every static
// activation quantizer's encoding from its range estimator. Memory does not grow with the number of batches.
// Cross-entropy ranges need a second pass: rewind() must restart the batches (it is called only then).
// Throws Error naming the tensor and batch where NaN/Inf first appears, or when there is no data.
using BatchSource = std::function<bool(Tensor& batch)>;
// BN-based ranges use `batch_norms` (from prepare_for_quantization); with no batches at all, every static
// quantizer must be BN-based and follow a BatchNormalization, or an Error names the ones that cannot be set.
void calibrate(const Model& m, QuantSimPlan& plan, const BatchSource& next,
               const std::function<void(int64_t samples)>& progress = {}, const std::function<void()>& rewind = {},
               const std::map<std::string, BnParams>& batch_norms = {});
// The same for any model: each batch feeds every required input by name (multi-input models, integer inputs,
// batches whose shapes differ; ranges are shared across all batches).
using FeedSource = std::function<bool(std::map<std::string, Tensor>& feeds)>;
void calibrate(const Model& m, QuantSimPlan& plan, const FeedSource& next,
               const std::function<void(int64_t samples)>& progress = {}, const std::function<void()>& rewind = {},
               const std::map<std::string, BnParams>& batch_norms = {});

// Weight encodings from the weights themselves (min-max or MSE per slice).
void compute_weight_encodings(const Model& m, QuantSimPlan& plan);

// A Concat whose output is a model output (nothing reads it) and whose inputs are all quantized with scales more
// than `max_ratio` apart gets no output quantizer: one int8 grid over [0, 640] box coordinates and [0, 1] class
// scores (YOLO heads) rounds every score to zero. Its inputs keep their own grids. Call after calibrate(). Returns
// one line per Concat relaxed ("'name': input scales 2.5 and 0.0039").
std::vector<std::string> relax_mixed_range_output_concats(const Model& m, QuantSimPlan& plan, float max_ratio = 16.f);

// Concat inputs take the Concat output's encoding (targets that force one scale on all Concat inputs, so the
// Concat needs no requantization). Call after calibrate().
void share_concat_encodings(const Model& m, QuantSimPlan& plan);

// Nodes that would still compute in float under the plan (for --strict on integer-only targets): nodes an
// override skips, and nodes with a float input or output that no quantizer covers. Returned as "OpType 'name'".
std::vector<std::string> float_ops(const Model& m, const QuantSimPlan& plan);

// Builds the simulated (QDQ) model. Fp16 mode stores weights as float16 initializers with a Cast. With int32_bias,
// the bias of each quantized Conv/Gemm whose input has a static quantizer (directly or through pass-through ops) is
// stored as int32 with scale s_x * s_w[c] and zero point 0; `int32_biases` (if given) receives how many.
Model build_quantized_model(const Model& m, const QuantSimPlan& plan, Mode mode, bool int32_bias = false,
                            int* int32_biases = nullptr);

}  // namespace lowbit::quant
