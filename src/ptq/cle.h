// Cross-layer equalization and high-bias absorption (TECHNIQUES.md §4; Nagel et al. 2019).
//
// For y = f(W2 f(W1 x + b1) + b2) with f positively homogeneous (ReLU, LeakyReLU, max/average pooling, identity),
// scaling output channel i of layer 1 by 1/s_i and input channel i of layer 2 by s_i leaves y unchanged. With r1_i
// the range (max |w|) of output channel i of W1 and r2_i the range of input channel i of W2, s_i = sqrt(r1_i / r2_i)
// makes both ranges sqrt(r1_i r2_i), which is what per-tensor quantization of both weights wants.
//
// The math is pure functions over plain arrays (LayerArrays); equalize_model() is the graph pass around them.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "ptq/layer.h"
#include "quant/fold_bn.h"

namespace lowbit::ptq {

struct LayerArrays {
  LayerShape shape;
  std::vector<float> w, b;  // w in the stored layout (shape.index), b one per output channel
};

// max |w| of each output channel / of each input channel.
std::vector<float> output_channel_ranges(const LayerArrays& l);
std::vector<float> input_channel_ranges(const LayerArrays& l);
// s_i = sqrt(r1_i / r2_i); 1 where either range is 0 (a dead channel stays as it is).
std::vector<float> equalization_scales(const std::vector<float>& r1, const std::vector<float>& r2);
// W[o] /= s_o and b[o] /= s_o.
void scale_output_channels(LayerArrays& l, const std::vector<float>& s);
// W[:, i] *= s_i for every column reading input channel i.
void scale_input_channels(LayerArrays& l, const std::vector<float>& s);

// Equalizes a chain L0 -> L1 -> ... -> Ln (n >= 1) pair by pair, sweeping until no scale of a sweep differs from
// 1 by more than `tol` (a single pair converges in one sweep) or `max_sweeps`. Returns, per pair, the total scale
// applied to each channel between the two layers (the channel of L_k's output is divided by it).
struct ChainResult {
  int sweeps = 0;
  std::vector<std::vector<float>> scales;  // [pair][channel]
};
ChainResult equalize_chain(const std::vector<LayerArrays*>& chain, int max_sweeps = 100, float tol = 1e-4f);

// High-bias absorption for a -> ReLU -> b, with the pre-activation of channel i modelled as N(beta_i, gamma_i^2)
// (the folded BatchNorm's shift and scale): c_i = max(0, beta_i - 3|gamma_i|), a.b[i] -= c_i, beta_i -= c_i, and
// b.b[o] += sum over the columns k of o reading channel i of b.w(o, k) * c_i. Exact wherever the pre-activation of
// channel i stays above c_i (and b sees no zero padding). Returns c.
std::vector<float> absorb_high_bias(LayerArrays& a, LayerArrays& b, std::vector<float>& beta, const std::vector<float>& gamma);

// ReLU6 is Clip(0, 6): not positively homogeneous (the clip point would have to move to 6/s_i per channel), so
// like the paper CLE may replace it by ReLU inside equalized pairs (the FP32 function then changes where
// activations exceeded 6), or leave such pairs alone.
enum class Relu6Policy { ReplaceWithRelu, Skip };

struct CleOptions {
  bool high_bias_absorption = true;
  Relu6Policy relu6 = Relu6Policy::ReplaceWithRelu;
  int max_sweeps = 100;
};

struct CleReport {
  int chains = 0, pairs = 0, relu6_replaced = 0, relu6_skipped = 0, absorbed_pairs = 0;
  float min_scale = 1.f, max_scale = 1.f;  // over all channels of all pairs
  double mean_absorbed = 0;                // mean c_i over the channels of absorbing pairs
  std::vector<std::string> chain_names;    // "conv1 -> conv2 -> conv3"
};

// The graph pass on a BN-folded model: finds chains of Conv/Gemm layers joined through single-reader
// positively homogeneous ops (Relu, LeakyRelu, Clip(0, inf), MaxPool, AveragePool, GlobalAverage/MaxPool, Flatten
// after a global pool, Identity; Clip(0, x) per `relu6`), equalizes each, then absorbs high biases where a pair is
// joined by a ReLU and the first layer's folded BatchNorm parameters are in `bn` (which is kept up to date with
// the new weights: beta and gamma scale with the channel). Weights shared with other nodes are never changed.
CleReport equalize_model(Model& m, std::map<std::string, quant::BnParams>& bn, const CleOptions& opt = {});

}  // namespace lowbit::ptq
