// Float convolution through oneDNN: the library picks its implementation for the CPU at run time (AVX2, AVX-512,
// AMX). 2-D convolutions work channels-last (NHWC), so that chains of convolutions pass activations on without
// reordering them; other ranks use oneDNN's preferred blocked layout, reordered from and to plain NC[D]HW. The reference conv_f32 (kernels/conv.h) is the specification it is tested against.
#pragma once
#include <memory>

#include "kernels/conv.h"

namespace lowbit {

class DnnlConv {
 public:
  // Throws Unsupported when oneDNN has no implementation for this geometry (callers fall back to conv_f32).
  // With clamp_lo <= clamp_hi given, the result is clamped as by OpContext::fused_clamp (oneDNN's clip post-op).
  DnnlConv(const ConvGeom& g, bool has_bias, float clamp_lo = 1.f, float clamp_hi = 0.f);
  ~DnnlConv();
  DnnlConv(const DnnlConv&) = delete;
  DnnlConv& operator=(const DnnlConv&) = delete;

  const ConvGeom& geom() const { return geom_; }
  bool has_bias() const { return has_bias_; }
  bool same_clamp(float lo, float hi) const {
    return (lo > hi && lo_ > hi_) || (lo == lo_ && hi == hi_);
  }
  // Weights [M, C/group, *kernel] reordered into the primitive's layout; shareable between concurrent runs.
  std::shared_ptr<const void> prepare_weights(const float* w) const;
  // x: [N, C, *in], y: [N, M, *out]; bias [M] when constructed with has_bias. For 2-D convolutions x and y may
  // each be stored channels-last ([N, H, W, C]) instead, as the flags say; other ranks are plain only.
  void run(const float* x, const std::shared_ptr<const void>& weights, const float* bias, float* y,
           bool x_channels_last = false, bool y_channels_last = false) const;
  // Whether run() takes channels-last tensors (2-D convolutions).
  bool channels_last_capable() const { return geom_.in.size() == 2; }

 private:
  struct Impl;
  ConvGeom geom_;
  bool has_bias_;
  float lo_, hi_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lowbit
