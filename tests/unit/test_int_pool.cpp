// Integer average pooling and grid rescaling (kernels/int_pool.h, rescale_table in kernels/requantize.h) against
// exact arithmetic written here: each window's mean as a rational number, rounded by the named tie rule. Mutations
// caught: padded taps added as codes instead of zero points (or counted when count_include_pad is 0), a window
// size off by one at the border, the zero point added before the primitive's rounding, a table indexed from 0 for
// int8 codes.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "core/error.h"
#include "kernels/int_pool.h"
#include "kernels/requantize.h"

namespace lowbit {
namespace {

// round(num / den), den > 0, ties as `r`.
int64_t round_rational(int64_t num, int64_t den, TieRounding r) {
  int64_t fl = num >= 0 ? num / den : -((-num + den - 1) / den);
  int64_t rem = num - fl * den;
  if (2 * rem > den) return fl + 1;
  if (2 * rem < den) return fl;
  if (r == TieRounding::HalfUp) return fl + 1;
  if (r == TieRounding::HalfEven) return fl % 2 == 0 ? fl : fl + 1;
  return fl >= 0 ? fl + 1 : fl;
}

ConvGeom geom2d(int64_t n, int64_t c, int64_t h, int64_t w, int64_t k, int64_t s, int64_t pad) {
  ConvGeom g;
  g.batch = n, g.in_ch = g.out_ch = c;
  g.in = {h, w}, g.kernel = {k, k}, g.stride = {s, s}, g.dilation = {1, 1};
  g.pad_begin = {pad, pad}, g.pad_end = {pad, pad};
  g.out = {conv_out_dim(h, k, s, 1, pad, pad, false), conv_out_dim(w, k, s, 1, pad, pad, false)};
  return g;
}

// Per output: the sum of (q - z_x) over the window's taps inside the input, and the divisor.
template <typename T>
void window_sums(const ConvGeom& g, const std::vector<T>& x, int32_t zx, bool include_pad, std::vector<int64_t>& sum,
                 std::vector<int64_t>& count) {
  for (int64_t nc = 0; nc < g.batch * g.in_ch; ++nc)
    for (int64_t oh = 0; oh < g.out[0]; ++oh)
      for (int64_t ow = 0; ow < g.out[1]; ++ow) {
        int64_t s = 0, n = 0;
        for (int64_t kh = 0; kh < g.kernel[0]; ++kh)
          for (int64_t kw = 0; kw < g.kernel[1]; ++kw) {
            int64_t ih = oh * g.stride[0] - g.pad_begin[0] + kh, iw = ow * g.stride[1] - g.pad_begin[1] + kw;
            bool inside = ih >= 0 && ih < g.in[0] && iw >= 0 && iw < g.in[1];
            if (inside) s += (int64_t)x[(size_t)((nc * g.in[0] + ih) * g.in[1] + iw)] - zx;
            n += inside || include_pad;
          }
        sum.push_back(s);
        count.push_back(n);
      }
}

template <typename T>
std::vector<T> random_codes(std::mt19937& rng, size_t n) {
  std::uniform_int_distribution<int> d(std::is_signed_v<T> ? -128 : 0, std::is_signed_v<T> ? 127 : 255);
  std::vector<T> v(n);
  for (auto& e : v) e = (T)d(rng);
  return v;
}

TEST(IntAvgPool, ShiftIsTheExactMeanRoundedByTheTieRule) {
  // s_x / s_y = 2 and windows of 4 taps: M = 1/2, so means fall on ties (half of all odd sums) and every rule shows.
  std::mt19937 rng(3);
  ConvGeom g = geom2d(2, 3, 6, 8, 2, 2, 0);
  auto x = random_codes<int8_t>(rng, (size_t)(g.batch * g.in_ch * g.in_size()));
  for (auto rule : {TieRounding::HalfEven, TieRounding::HalfAway, TieRounding::HalfUp}) {
    AvgPoolQuant q{RequantKind::Shift, rule, 0.25f, 0.125f, -7, 3, -128, 127, false};
    std::vector<int32_t> y((size_t)(g.batch * g.in_ch * g.out_size()));
    avg_pool_codes(g, x.data(), y.data(), false, q, "t");
    std::vector<int64_t> sum, count;
    window_sums(g, x, q.zx, false, sum, count);
    for (size_t i = 0; i < y.size(); ++i)
      ASSERT_EQ(y[i], std::clamp<int64_t>(round_rational(sum[i] * 2, count[i], rule) + q.zy, -128, 127)) << i;
  }
}

TEST(IntAvgPool, FixedPointIsTheRealMeanExceptNearTiesWithPaddingCountedOrNot) {
  std::mt19937 rng(5);
  ConvGeom g = geom2d(2, 4, 7, 9, 3, 2, 1);  // border windows have 4 or 6 taps inside
  auto x = random_codes<uint8_t>(rng, (size_t)(g.batch * g.in_ch * g.in_size()));
  for (bool include_pad : {false, true}) {
    // half_even: one rounding of the exact Q31 product (half_away is gemmlowp's two roundings, test_requantize.cpp).
    AvgPoolQuant q{RequantKind::FixedPoint, TieRounding::HalfEven, 0.0371f, 0.0213f, 97, 130, 0, 255, false};
    std::vector<int32_t> y((size_t)(g.batch * g.in_ch * g.out_size()));
    avg_pool_codes(g, x.data(), y.data(), include_pad, q, "t");
    std::vector<int64_t> sum, count;
    window_sums(g, x, q.zx, include_pad, sum, count);
    int checked = 0;
    for (size_t i = 0; i < y.size(); ++i) {
      long double real = (long double)sum[i] * q.sx / ((long double)q.sy * count[i]);
      if (std::fabs(real - std::floor(real) - 0.5L) < 1e-4L) continue;  // Q31 rounding of M may move a near-tie
      ++checked;
      ASSERT_EQ(y[i], std::clamp<int64_t>(std::llround(real) + q.zy, 0, 255)) << i << " include_pad " << include_pad;
    }
    EXPECT_GT(checked, (int)y.size() * 9 / 10);
  }
}

TEST(IntAvgPool, GlobalFloatIsOnnxRuntimesIntegerSumTimesFloatMultiplier) {
  // QLinearGlobalAveragePool: acc = sum(q) - z_x * N, y = nearbyint(float(acc) * float32(s_x / (s_y * N))) + z_y.
  std::mt19937 rng(9);
  ConvGeom g = geom2d(3, 5, 7, 7, 7, 1, 0);
  auto x = random_codes<uint8_t>(rng, (size_t)(g.batch * g.in_ch * g.in_size()));
  AvgPoolQuant q{RequantKind::Float, TieRounding::HalfEven, 0.0523f, 0.0111f, 12, 40, 0, 255, false};
  std::vector<int32_t> y((size_t)(g.batch * g.in_ch));
  avg_pool_codes(g, x.data(), y.data(), false, q, "t");
  float m = q.sx / (q.sy * 49.f);
  for (int64_t c = 0; c < g.batch * g.in_ch; ++c) {
    int32_t acc = -q.zx * 49;
    for (int64_t k = 0; k < 49; ++k) acc += x[(size_t)(c * 49 + k)];
    EXPECT_EQ(y[(size_t)c], std::clamp((int32_t)std::nearbyint((float)acc * m) + q.zy, 0, 255)) << c;
  }
}

TEST(IntAvgPool, FloatSumFormAddsTheZeroPointBeforeRounding) {
  // QLinearAveragePool: v = sum of float32 s_x * (q - z_x), y = nearbyint(v / count / s_y + z_y), for every window.
  std::mt19937 rng(11);
  ConvGeom g = geom2d(1, 6, 8, 8, 3, 1, 1);
  auto x = random_codes<int8_t>(rng, (size_t)(g.batch * g.in_ch * g.in_size()));
  AvgPoolQuant q{RequantKind::Float, TieRounding::HalfEven, 0.05f, 0.05f, 3, -5, -128, 127, true};
  std::vector<int32_t> y((size_t)(g.in_ch * g.out_size()));
  avg_pool_codes(g, x.data(), y.data(), false, q, "t");
  for (int64_t c = 0; c < g.in_ch; ++c)
    for (int64_t oh = 0; oh < 8; ++oh)
      for (int64_t ow = 0; ow < 8; ++ow) {
        float v = 0;
        int n = 0;
        for (int64_t ih = std::max<int64_t>(oh - 1, 0); ih < std::min<int64_t>(oh + 2, 8); ++ih)
          for (int64_t iw = std::max<int64_t>(ow - 1, 0); iw < std::min<int64_t>(ow + 2, 8); ++iw, ++n)
            v += q.sx * (float)(x[(size_t)((c * 8 + ih) * 8 + iw)] - q.zx);
        int32_t want = std::clamp((int32_t)std::nearbyint(v / (float)n / q.sy + (float)q.zy), -128, 127);
        ASSERT_EQ(y[(size_t)((c * 8 + oh) * 8 + ow)], want) << c << " " << oh << " " << ow;
      }
  q.kind = RequantKind::FixedPoint;
  EXPECT_THROW(avg_pool_codes(g, x.data(), y.data(), false, q, "t"), Error);
}

TEST(IntAvgPool, ShiftRefusesAWindowThatIsNotAPowerOfTwo) {
  AvgPoolQuant q{RequantKind::Shift, TieRounding::HalfEven, 0.25f, 0.125f, 0, 0, 0, 255, false};
  EXPECT_NO_THROW(avg_pool_requant(q, 8, "t"));
  EXPECT_THROW(avg_pool_requant(q, 49, "t"), Error);
}

TEST(RescaleTable, SameGridIsTheIdentityAndOtherGridsFollowTheArithmetic) {
  for (auto kind : {RequantKind::Float, RequantKind::FixedPoint, RequantKind::Shift}) {
    auto t = rescale_table(0.0625f, -3, -128, 0.0625f, -3, -128, 127, kind, TieRounding::HalfEven, "t");
    for (int k = 0; k < 256; ++k) ASSERT_EQ(t[(size_t)k], k - 128);
  }
  // Shift: s_x = 2 s_y doubles the offset from the zero point, exactly, and clamps.
  auto d = rescale_table(0.5f, 10, 0, 0.25f, 20, 0, 255, RequantKind::Shift, TieRounding::HalfEven, "t");
  for (int k = 0; k < 256; ++k) ASSERT_EQ(d[(size_t)k], std::clamp(2 * (k - 10) + 20, 0, 255));
  // Float: DequantizeLinear then QuantizeLinear in float32.
  auto f = rescale_table(0.037f, 5, -128, 0.021f, -9, -128, 127, RequantKind::Float, TieRounding::HalfEven, "t");
  for (int k = 0; k < 256; ++k)
    ASSERT_EQ(f[(size_t)k], std::clamp((int32_t)std::nearbyint(0.037f * (float)(k - 128 - 5) / 0.021f) - 9, -128, 127));
  // Fixed point: the real value except near ties (s_x / s_y = 3/2: ties at odd offsets).
  auto h = rescale_table(0.03f, 0, 0, 0.02f, 0, 0, 255, RequantKind::FixedPoint, TieRounding::HalfAway, "t");
  for (int k = 0; k < 256; ++k) ASSERT_EQ(h[(size_t)k], std::min(255, (3 * k + 1) / 2)) << k;
}

}  // namespace
}  // namespace lowbit
