// Convolution geometry and kernels (N-d): float32 via im2col + BLAS, depthwise direct, transposed, and integer.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace lowbit {

struct ConvGeom {
  int64_t batch = 1, in_ch = 1, out_ch = 1, group = 1;
  std::vector<int64_t> in, kernel, out, stride, dilation, pad_begin, pad_end;  // per spatial dim
  int64_t in_size() const;     // product of in
  int64_t out_size() const;    // product of out
  int64_t kernel_size() const; // product of kernel
  bool operator==(const ConvGeom&) const = default;
};

// Output spatial size for a convolution/pool window (floor or ceil mode).
int64_t conv_out_dim(int64_t in, int64_t k, int64_t stride, int64_t dil, int64_t pb, int64_t pe, bool ceil_mode);
// Resolves auto_pad ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID") into explicit pads and output dims.
void resolve_auto_pad(const std::string& auto_pad, ConvGeom& g, bool ceil_mode = false);

// x: [N, C, *in], w: [M, C/group, *kernel], bias: [M] or nullptr; y: [N, M, *out].
void conv_f32(const ConvGeom& g, const float* x, const float* w, const float* bias, float* y);
// x: [N, C, *in], w: [C, M/group, *kernel]; y: [N, M, *out] (out, pads already resolved).
void conv_transpose_f32(const ConvGeom& g, const float* x, const float* w, const float* bias, float* y);
// Integer convolution, int32 accumulation of (x - zx) * (w - zw[m or 0]).
template <typename TX, typename TW>
void conv_int32(const ConvGeom& g, const TX* x, int32_t zx, const TW* w, const int32_t* zw, bool zw_per_channel,
                int32_t* y);

}  // namespace lowbit
