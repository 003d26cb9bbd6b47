#include "kernels/int_softmax.h"

#include <algorithm>
#include <cfloat>
#include <climits>
#include <cmath>
#include <type_traits>

namespace lowbit {

SoftmaxTable make_softmax_table(float s_x, int64_t d) {
  SoftmaxTable t;
  // FLT_MAX / d in float32, its logarithm in double: the headroom that keeps a row's sum of d terms finite.
  float room = FLT_MAX / (float)std::max<int64_t>(d, 1);
  double c = std::max(0.0, std::log((double)room) - 5.0) / (double)s_x;
  for (int k = 0; k < 256; ++k) t.exp[k] = (float)std::exp(((double)k - 255.0 + c) * (double)s_x);
  return t;
}

template <typename T>
void softmax_exp_table(const T* x, T* y, int64_t outer, int64_t d, int64_t inner, const SoftmaxTable& table,
                       float s_y, int32_t z_y) {
  const float inv = std::floor(1.0f / s_y);
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      const int64_t base = o * d * inner + i;
      int32_t xmax = x[base];
      for (int64_t j = 1; j < d; ++j) xmax = std::max<int32_t>(xmax, x[base + j * inner]);
      auto e = [&](int64_t j) { return table.exp[(int32_t)x[base + j * inner] - xmax + 255]; };
      float sum = 0;
      for (int64_t j = 0; j < d; ++j) sum += e(j);
      for (int64_t j = 0; j < d; ++j) {
        float q = std::nearbyint((e(j) * inv) / sum);  // in [0, inv], or +inf when e * inv overflowed
        bool fits = q >= 0 && q < 2147483648.0f;         // false for +inf only
        if constexpr (std::is_same_v<T, uint8_t>) {
          uint32_t v = (fits ? (uint32_t)q : 0u) + (uint32_t)z_y;
          y[base + j * inner] = v > 255 ? (uint8_t)255 : (uint8_t)v;
        } else {
          int64_t v = (fits ? (int64_t)q : (int64_t)INT32_MIN) + z_y;
          if (!fits) v = (int32_t)(uint32_t)(uint64_t)v;  // the int32 sum wraps, as the target's does
          y[base + j * inner] = (int8_t)std::clamp<int64_t>(v, -128, 127);
        }
      }
    }
}

template void softmax_exp_table<uint8_t>(const uint8_t*, uint8_t*, int64_t, int64_t, int64_t, const SoftmaxTable&,
                                         float, int32_t);
template void softmax_exp_table<int8_t>(const int8_t*, int8_t*, int64_t, int64_t, int64_t, const SoftmaxTable&,
                                        float, int32_t);

}  // namespace lowbit
