#include "kernels/fake_quant.h"

namespace lowbit {

void fake_quant_f32(const float* x, float* y, int64_t outer, int64_t channels, int64_t inner, const float* s,
                    const float* z, float qmin, float qmax) {
  int64_t rows = outer * channels;
#pragma omp parallel for schedule(static) if (rows * inner > 65536)
  for (int64_t r = 0; r < rows; ++r) {
    int64_t k = r % channels;
    float sk = s[k], zk = z[k];
    const float* xr = x + r * inner;
    float* yr = y + r * inner;
    for (int64_t i = 0; i < inner; ++i) {
      float v = scaled_clamped(xr[i], sk);
      float q = v != v ? zk : round_half_even_small(v) + zk;
      q = q < qmin ? qmin : (q > qmax ? qmax : q);
      yr[i] = (q - zk) * sk;
    }
  }
}

}  // namespace lowbit
