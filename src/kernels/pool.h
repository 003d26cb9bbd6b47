// Max/average pooling over N-d windows (reference loops, parallel over channels).
#pragma once
#include <cstdint>

#include "kernels/conv.h"

namespace lowbit {

// x: [N, C, *in]; y: [N, C, *out]; indices (optional, may be null): flat index into x per MaxPool ONNX rules
// (row-major over [N, C, *in], or column-major spatial when storage_order == 1).
void max_pool_f32(const ConvGeom& g, const float* x, float* y, int64_t* indices, int storage_order);
void avg_pool_f32(const ConvGeom& g, const float* x, float* y, bool count_include_pad);

}  // namespace lowbit
