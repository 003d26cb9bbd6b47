// Average pooling on 8-bit codes (reference loops: the specification of the integer engine's pooling).
//
// Input codes q (scale s_x, zero point z_x), output codes on (s_y, z_y) clamped to [qmin, qmax]. Two forms:
//   integer  acc = sum over the window's taps inside the input of (q - z_x) (a padded tap holds the zero point and
//            adds 0), then the one requantization primitive (kernels/requantize.h) with M = s_x / (s_y * count):
//            y = clamp(round(acc * M) + z_y). For the Float arithmetic M is float32(s_x / float32(s_y * count)) and
//            acc * M is rounded in float32, which is ONNX Runtime's QLinearGlobalAveragePool (MLAS) bit for bit;
//            FixedPoint and Shift start from the exact M (Shift: M must be a power of two).
//   float    ONNX Runtime's QLinearAveragePool: v = the float32 sum of s_x * (q - z_x) in tap order, v = v / count,
//            y = clamp(round(v / s_y + z_y)) (the zero point added before rounding).
// count: the taps inside the input, plus with count_include_pad those in the explicit padding (kernels/window.h).
#pragma once
#include <cstdint>

#include "kernels/conv.h"
#include "kernels/requantize.h"

namespace lowbit {

struct AvgPoolQuant {
  RequantKind kind = RequantKind::Float;
  TieRounding rounding = TieRounding::HalfEven;
  float sx = 1, sy = 1;
  int32_t zx = 0, zy = 0, qmin = 0, qmax = 255;
  bool float_sum = false;  // the float form (Float arithmetic only)
};

// The primitive's parameters for a window of `count` taps (Error naming `where` when M does not fit the
// arithmetic, e.g. Shift with a count that is not a power of two).
RequantParams avg_pool_requant(const AvgPoolQuant& q, int64_t count, const std::string& where);

// x: [N, C, *in] codes; y: [N, C, *out] codes (int32, on the output grid). Global pooling is the window that covers
// the input (kernel = in, no padding).
template <typename T>
void avg_pool_codes(const ConvGeom& g, const T* x, int32_t* y, bool count_include_pad, const AvgPoolQuant& q,
                    const std::string& where);

}  // namespace lowbit
