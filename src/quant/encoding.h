// Uniform affine quantization math (TECHNIQUES.md §1): integer grids, scale/zero-point from a range, and
// quantize / dequantize / fake-quantize over plain arrays with per-tensor, per-channel or per-group encodings.
//
//   q = clamp(round(x / s) + z, qmin, qmax),   x_hat = s * (q - z)
//
// x / s is computed in float32 (as ONNX QuantizeLinear does) and rounded by a named policy, never implicitly.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace lowbit::quant {

enum class Rounding { HalfToEven, HalfAwayFromZero };  // ONNX QuantizeLinear / TFLite and most DSPs
enum class Granularity { PerTensor, PerChannel, PerGroup };
enum class ScaleForm { Float, PowerOfTwo };

// The integer grid: unsigned [0, 2^b-1]; signed [-2^(b-1), 2^(b-1)-1]; narrow ("strict symmetric") drops the
// lowest code: signed [-(2^(b-1)-1), 2^(b-1)-1], unsigned [1, 2^b-1].
struct Grid {
  int bits = 8;
  bool is_signed = true;
  bool narrow = false;
  int32_t qmin() const;
  int32_t qmax() const;
};

struct QuantizerSpec {
  Grid grid;
  bool symmetric = true;
  ScaleForm scale_form = ScaleForm::Float;
  Rounding rounding = Rounding::HalfToEven;
  Granularity granularity = Granularity::PerTensor;
  int axis = 0;            // channel axis (per-channel and per-group)
  int64_t group_size = 0;  // per-group: block length G
};
// Throws Error for bit widths outside 2..16, per-group without a positive group size, and the like.
void validate(const QuantizerSpec& spec);

// Scale and zero point for one range [lo, hi] (lo <= hi):
//  - symmetric, signed: z = 0, s = max(|lo|, |hi|) / qmax (the whole range is representable, nothing clips);
//  - symmetric, unsigned: z = 2^(b-1), s = max(|lo|, |hi|) / (qmax - z);
//  - asymmetric: the range is widened to contain 0, s = (hi - lo) / (qmax - qmin), z = round(qmin - lo / s)
//    clamped to the grid (but kept off an end of the grid where that side of the range holds data), then s is
//    enlarged if needed so that [lo, hi] stays inside s * ([qmin, qmax] - z);
//  - power-of-two form: s is rounded *up* to 2^ceil(log2 s) (never clips more than the float scale), z recomputed;
//  - an all-zero range gets s = 1 (any scale represents it exactly).
std::pair<float, int32_t> scale_zero_point(float lo, float hi, const QuantizerSpec& spec);

float round_with(float v, Rounding r);
// NaN maps to the zero point (the integer of real 0) rather than to an undefined float->int conversion.
inline int32_t quantize_one(float x, float s, int32_t z, const Grid& g, Rounding r) {
  float q = round_with(x / s, r) + (float)z;
  if (q != q) return z;
  q = q < (float)g.qmin() ? (float)g.qmin() : (q > (float)g.qmax() ? (float)g.qmax() : q);
  return (int32_t)q;
}
inline float dequantize_one(int32_t q, float s, int32_t z) { return s * (float)(q - z); }

// One (scale, zero point) per slice of a tensor: 1 for per-tensor, dim[axis] for per-channel,
// dim[axis] * ceil(rest / G) for per-group, where `rest` counts the elements of one channel in row-major order
// with the channel axis removed (for a [N, K] weight with axis 0 these are blocks of G along K).
struct Encoding {
  QuantizerSpec spec;
  Shape shape;  // the tensor shape the encoding was made for
  std::vector<float> scale;
  std::vector<int32_t> zero_point;
  int64_t num_slices() const { return (int64_t)scale.size(); }
};

// Number of slices and the slice of each element for a tensor shape under a spec.
int64_t num_slices(const Shape& shape, const QuantizerSpec& spec);
std::vector<int64_t> slice_index(const Shape& shape, const QuantizerSpec& spec);

// Per-slice [min, max] of x.
std::vector<std::pair<float, float>> minmax_per_slice(const float* x, const Shape& shape, const QuantizerSpec& spec);
// Encoding from per-slice ranges.
Encoding make_encoding(const QuantizerSpec& spec, const Shape& shape, const std::vector<std::pair<float, float>>& ranges);

void quantize(const float* x, int32_t* q, const Encoding& e);
void dequantize(const int32_t* q, float* x, const Encoding& e);
void fake_quantize(const float* x, float* y, const Encoding& e);

// fp16 mode: round to the nearest IEEE half (ties to even) and back.
void fake_quantize_fp16(const float* x, float* y, int64_t n);

}  // namespace lowbit::quant
