#include "kernels/int_pool.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <vector>

#include "core/error.h"
#include "kernels/window.h"

namespace lowbit {

RequantParams avg_pool_requant(const AvgPoolQuant& q, int64_t count, const std::string& where) {
  // 255 * 2^23 < 2^31: the sum of a window of codes fits the int32 accumulator.
  check(count > 0 && count < (int64_t(1) << 23), where, ": an average-pooling window of ", count, " taps (at most 2^23 - 1)");
  double m = q.kind == RequantKind::Float ? (double)(q.sx / (q.sy * (float)count))
                                          : (double)q.sx / ((double)q.sy * (double)count);
  return make_requant(m, q.kind, q.rounding, where);
}

template <typename T>
void avg_pool_codes(const ConvGeom& g, const T* x, int32_t* y, bool count_include_pad, const AvgPoolQuant& q,
                    const std::string& where) {
  check(!q.float_sum || q.kind == RequantKind::Float, where, ": the float-sum form needs the Float arithmetic");
  int64_t S = g.in_size(), P = g.out_size(), K = g.kernel_size();
  // One parameter set per window size that occurs (a window at the border may have fewer taps).
  std::vector<std::optional<RequantParams>> params((size_t)K + 1);
  const size_t r = g.in.size();
  for (int64_t nc = 0; nc < g.batch * g.in_ch; ++nc) {
    std::vector<int64_t> coord(r);
    const T* src = x + nc * S;
    window::for_each_window(g, [&](int64_t p, const std::vector<int64_t>& start) {
      int64_t acc = 0;
      float v = 0.f;
      int64_t count = window::for_each_avg_tap(g, start, coord, count_include_pad, [&](int64_t idx) {
        int32_t d = (int32_t)src[idx] - q.zx;
        if (q.float_sum) v += q.sx * (float)d;
        else acc += d;
      });
      int64_t out = q.zy;  // an empty window (only overhang) averages to 0
      if (count > 0 && q.float_sum) {
        float w = round_ties(v / (float)count / q.sy + (float)q.zy, q.rounding);
        out = (int64_t)std::fmax(std::fmin(w, 4.0e9f), -4.0e9f);
      } else if (count > 0) {
        auto& p = params[(size_t)count];
        if (!p) p = avg_pool_requant(q, count, where);
        out = requantize_raw((int32_t)acc, *p) + q.zy;  // |acc| < 255 * 2^23 fits int32
      }
      y[nc * P + p] = (int32_t)std::clamp<int64_t>(out, q.qmin, q.qmax);
    });
  }
}

template void avg_pool_codes<uint8_t>(const ConvGeom&, const uint8_t*, int32_t*, bool, const AvgPoolQuant&,
                                      const std::string&);
template void avg_pool_codes<int8_t>(const ConvGeom&, const int8_t*, int32_t*, bool, const AvgPoolQuant&,
                                     const std::string&);

}  // namespace lowbit
