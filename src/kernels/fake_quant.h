// Fake quantization (quantize then dequantize) over [outer, channels, inner] with one scale and zero point per
// channel: y = (clamp(round_half_even(x / s) + z, qmin, qmax) - z) * s, NaN -> 0 (the zero point's value). The
// arithmetic of ONNX QuantizeLinear + DequantizeLinear, element for element (x / s in float32, ties to even).
#pragma once
#include <cstdint>

namespace lowbit {

// Round half to even, for |v| <= 2^22: adding and removing 1.5 * 2^23 leaves the integer nearest v (ties to even, the
// default rounding mode), inline, where std::nearbyint is a library call on baseline x86-64. Callers clamp first.
inline float round_half_even_small(float v) {
  const float magic = 12582912.f;  // 1.5 * 2^23
  return (v + magic) - magic;
}
// x / s clamped to +-2^22 (beyond that every grid clamps anyway; NaN stays NaN).
inline float scaled_clamped(float x, float s) {
  float v = x / s;
  const float big = 4194304.f;  // 2^22
  return v > big ? big : (v < -big ? -big : v);
}

// Elements per work item of the fake-quant kernel and of its gradient rule (train/grad_quant.cpp), whose partial sums
// are kept per block and added in block order: the scale's gradient is then the same for any thread count.
constexpr int64_t kFakeQuantBlock = 16384;

// z: the zero points already rounded to integers (as floats), qmin/qmax: the grid (|q| <= 2^16).
void fake_quant_f32(const float* x, float* y, int64_t outer, int64_t channels, int64_t inner, const float* s,
                    const float* z, float qmin, float qmax);

}  // namespace lowbit
