// Float convolution through oneDNN: the library picks its implementation for the CPU at run time (AVX2, AVX-512,
// AMX) and works in a blocked layout internally; lowbit's tensors stay plain NC[D]HW, reordered on the way in and
// out. The reference conv_f32 (kernels/conv.h) is the specification it is tested against.
#pragma once
#include <memory>

#include "kernels/conv.h"

namespace lowbit {

class DnnlConv {
 public:
  // Throws Unsupported when oneDNN has no implementation for this geometry (callers fall back to conv_f32).
  explicit DnnlConv(const ConvGeom& g, bool has_bias);
  ~DnnlConv();
  DnnlConv(const DnnlConv&) = delete;
  DnnlConv& operator=(const DnnlConv&) = delete;

  const ConvGeom& geom() const { return geom_; }
  bool has_bias() const { return has_bias_; }
  // Weights [M, C/group, *kernel] reordered into the primitive's layout; shareable between concurrent runs.
  std::shared_ptr<const void> prepare_weights(const float* w) const;
  // x: [N, C, *in], y: [N, M, *out]; bias [M] when constructed with has_bias.
  void run(const float* x, const std::shared_ptr<const void>& weights, const float* bias, float* y) const;

 private:
  struct Impl;
  ConvGeom geom_;
  bool has_bias_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lowbit
