#include "kernels/fake_quant.h"

#include <algorithm>

namespace lowbit {

namespace {

// n elements whose scale and zero point are s[j], z[j] (kPerElement) or s[0], z[0].
template <bool kPerElement>
void fake_quant_run(const float* __restrict x, float* __restrict y, int64_t n, const float* __restrict s,
                    const float* __restrict z, float qmin, float qmax) {
  for (int64_t i = 0; i < n; ++i) {
    const float sk = s[kPerElement ? i : 0], zk = z[kPerElement ? i : 0];
    float v = scaled_clamped(x[i], sk);
    float q = v != v ? zk : round_half_even_small(v) + zk;
    q = q < qmin ? qmin : (q > qmax ? qmax : q);
    y[i] = (q - zk) * sk;
  }
}

}  // namespace

void fake_quant_f32(const float* x, float* y, int64_t outer, int64_t channels, int64_t inner, const float* s,
                    const float* z, float qmin, float qmax) {
  if (inner == 1 && channels > 1) {  // the channel axis is the last one (MatMul weights): rows of `channels` values
#pragma omp parallel for schedule(static) if (outer * channels > 65536)
    for (int64_t o = 0; o < outer; ++o)
      fake_quant_run<true>(x + o * channels, y + o * channels, channels, s, z, qmin, qmax);
    return;
  }
  // Work items are blocks of one row (one channel's run of `inner` values), so that a per-tensor quantizer (a single
  // row) is spread over every thread too. Each element's value does not depend on the split.
  const int64_t rows = outer * channels, per_row = (inner + kFakeQuantBlock - 1) / kFakeQuantBlock;
#pragma omp parallel for schedule(static) if (rows * inner > 65536)
  for (int64_t b = 0; b < rows * per_row; ++b) {
    const int64_t r = b / per_row, i0 = (b % per_row) * kFakeQuantBlock, i1 = std::min(inner, i0 + kFakeQuantBlock);
    fake_quant_run<false>(x + r * inner + i0, y + r * inner + i0, i1 - i0, s + r % channels, z + r % channels, qmin, qmax);
  }
}

}  // namespace lowbit
