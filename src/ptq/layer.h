// The layers the PTQ algorithms work on: a Conv, a Gemm or a MatMul whose weight is a constant float
// initializer, seen as `groups` matrices W_g [O/groups, K] applied to K-vectors of input (an im2col column of the
// input for Conv, a row of the input for Gemm/MatMul), plus one bias value per output channel.
#pragma once
#include <cmath>
#include <optional>
#include <string>
#include <vector>

#include "ir/graph.h"

namespace lowbit::ptq {

// The geometry of a weight array, enough for the pure CLE / AdaRound / bias-correction math over plain arrays.
struct LayerShape {
  int64_t out_channels = 1, in_channels = 1, groups = 1;
  int64_t kernel = 1;              // spatial taps per (output, input) channel pair: kh*kw for Conv, 1 otherwise
  bool transposed = false;         // weight stored [K, O] (Gemm with transB=0, MatMul) instead of [O, K]
  int64_t k() const { return in_channels / groups * kernel; }  // columns of one output channel
  int64_t out_per_group() const { return out_channels / groups; }
  int64_t size() const { return out_channels * k(); }
  // Flat index of element (o, k) of output channel o in the stored weight.
  int64_t index(int64_t o, int64_t kk) const { return transposed ? kk * out_channels + o : o * k() + kk; }
  // The input channel that column kk of output channel o reads.
  int64_t input_channel(int64_t o, int64_t kk) const {
    return (o / out_per_group()) * (in_channels / groups) + kk / kernel;
  }
};

enum class LayerKind { Conv, Gemm, MatMul };

struct LinearLayer {
  int node = -1;           // index in graph.nodes (valid until the graph is edited)
  std::string name;        // node name
  LayerKind kind = LayerKind::Conv;
  std::string input, output, weight;
  std::string bias;        // initializer holding the bias: Conv/Gemm input 2, or the constant of a MatMul's Add
  std::string bias_node;   // for MatMul: the Add node holding the bias
  LayerShape shape;
};

// The layer view of node `node`, or nullopt with the reason in *why (not Conv/Gemm/MatMul, weight not a constant
// float initializer, Gemm with transA/alpha/beta, a bias that is not one value per output channel, ...).
std::optional<LinearLayer> linear_layer(const Graph& g, int node, std::string* why = nullptr);

// The channel axis of the layer's output value (1 for Conv, the last axis otherwise; -1 = last).
int output_channel_axis(const LinearLayer& l);

// Bias values (zeros when the layer has none).
std::vector<float> get_bias(const Graph& g, const LinearLayer& l);
// Writes the bias. A layer without one gets a new initializer (Conv/Gemm input 2); a MatMul without a bias Add
// cannot take one: returns false. Never writes into a buffer shared with another tensor or model.
bool set_bias(Graph& g, LinearLayer& l, const std::vector<float>& b);
// A copy of the weight values, and writing them back (into a fresh buffer: copies of the model are unaffected).
std::vector<float> get_weight(const Graph& g, const LinearLayer& l);
void set_weight(Graph& g, const LinearLayer& l, const std::vector<float>& w);

// The activation a layer's output goes through before anything else reads it (AdaRound's f_a and the fused
// activation of the quantizer placement): Relu, or Clip with constant bounds; otherwise none.
using Activation = ClampRange;  // y = clamp(x, lo, hi); none = (-inf, inf)
Activation fused_activation(const Graph& g, const std::string& value, std::string* output = nullptr);

}  // namespace lowbit::ptq
