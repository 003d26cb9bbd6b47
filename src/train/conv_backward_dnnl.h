// The two reverse convolutions of a Conv's gradient through oneDNN (picked per CPU at run time): the input gradient
// (backward-data) and the weight and bias gradients (backward-weights). The im2col loops of grad_nn.cpp are the
// specification they are tested against (tests/unit/test_grad.cpp, float relative error bound).
#pragma once
#include <memory>

#include "kernels/conv.h"

namespace lowbit::train {

class DnnlConvBackward {
 public:
  // Throws Unsupported when oneDNN has no implementation for the geometry (callers use the loops).
  DnnlConvBackward(const ConvGeom& g, bool has_bias);
  ~DnnlConvBackward();
  DnnlConvBackward(const DnnlConvBackward&) = delete;
  DnnlConvBackward& operator=(const DnnlConvBackward&) = delete;

  // All tensors plain (row-major): gy [N, M, *out], w [M, C/group, *kernel] -> gx [N, C, *in].
  void data(const float* gy, const float* w, float* gx) const;
  // x [N, C, *in], gy -> gw [M, C/group, *kernel] and gb [M] (gb may be nullptr when built without bias).
  void weights(const float* x, const float* gy, float* gw, float* gb) const;

  // One per geometry, shared by all callers (built on first use; nullptr when oneDNN declines the geometry).
  static std::shared_ptr<const DnnlConvBackward> get(const ConvGeom& g, bool has_bias);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lowbit::train
