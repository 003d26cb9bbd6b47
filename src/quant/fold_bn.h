// Batch-norm folding (TECHNIQUES.md §3): sigma = sqrt(var + eps), for output channel c
//   W_fold[c] = W[c] * gamma[c] / sigma[c],   b_fold[c] = beta[c] + (b[c] - mean[c]) * gamma[c] / sigma[c].
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "ir/graph.h"

namespace lowbit::quant {

// Folds in place. w holds `channels` output channels along an axis that splits it into
// [outer, channels, inner] (Conv OIHW: outer 1, inner I*H*W; Gemm with transB=0, weight [K, N]: outer K, inner 1).
// b has `channels` entries (zeros when the layer had no bias). Arithmetic in double, stored as float.
void fold_bn(float* w, float* b, int64_t outer, int64_t channels, int64_t inner, const float* gamma, const float* beta,
             const float* mean, const float* var, float eps);

// Graph pass: every BatchNormalization whose input is produced by a Conv (or a Gemm with a constant weight) that
// has no other reader is folded into that layer's weight and bias, and removed. Weights and biases are copied
// before folding (shared initializers are never changed for another reader). Returns the number folded.
// A folded BatchNormalization: its shift and scale (BN-based range setting; CLE rescales them with the layer), its
// running statistics and epsilon, and the layer it was folded into (QAT's BN-folding strategies rebuild it).
struct BnParams {
  std::vector<float> beta, gamma;
  std::vector<float> mean, var;
  float eps = 1e-5f;
  std::string layer;  // node name
};
// `record` (optional) receives, for every folded BN, its output value name -> (beta, gamma).
int fold_batch_norms(Model& m, std::map<std::string, BnParams>* record = nullptr);

struct PrepareStats {
  int constants_folded = 0, batch_norms_folded = 0;
  std::map<std::string, BnParams> batch_norms;  // output value -> BN parameters
};
// The float model as quantization sees it: every node uniquely named, constant sub-graphs folded (Constant/Identity/shape chains, so that
// parameters are initializers), then batch norms folded into their layers.
PrepareStats prepare_for_quantization(Model& m);

}  // namespace lowbit::quant
