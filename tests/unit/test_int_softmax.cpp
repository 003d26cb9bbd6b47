// IntSoftmax's kernel (kernels/int_softmax.h) against its formula evaluated independently here in long double:
// e_i = exp(s_x (x_i - x_max)), y_i = round(e_i * floor(1 / s_y) / sum_j e_j) + z_y. The kernel computes in float32
// (table entries, a sequential sum, a product and a quotient), so its value of e_i * inv / sum has a relative
// error of at most (d + 3) u, u = 2^-24 (d - 1 additions, the table entry, the product, the quotient); where the
// exact value lies farther than that from a rounding tie, the codes must be equal, and elsewhere within one.
// ONNX Runtime's own kernel is the peer in tests/ort/check_engine.py. Mutations caught: 1 / s_y not truncated,
// the row maximum not subtracted (or the table indexed off by one), the inner-axis layout (stride) wrong, the
// saturation to the 8-bit type missing.
#include <gtest/gtest.h>

#include <cfloat>
#include <algorithm>
#include <cmath>
#include <random>

#include "kernels/int_softmax.h"

namespace lowbit {
namespace {

template <typename T>
void check_case(std::mt19937& rng, int64_t outer, int64_t d, int64_t inner, float sx, float sy, int32_t zy,
                int64_t* exact, int64_t* near_tie) {
  std::uniform_int_distribution<int> code(std::is_same_v<T, uint8_t> ? 0 : -128, std::is_same_v<T, uint8_t> ? 255 : 127);
  std::vector<T> x((size_t)(outer * d * inner)), y(x.size());
  for (auto& v : x) v = (T)code(rng);
  softmax_exp_table(x.data(), y.data(), outer, d, inner, make_softmax_table(sx, d), sy, zy);
  const long double inv = std::floor(1.0f / sy), tol = (long double)(d + 3) * std::ldexp(1.0L, -24);
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      auto at = [&](int64_t j) { return (size_t)(o * d * inner + j * inner + i); };
      int xmax = x[at(0)];
      for (int64_t j = 1; j < d; ++j) xmax = std::max<int>(xmax, x[at(j)]);
      long double sum = 0;
      for (int64_t j = 0; j < d; ++j) sum += std::exp((long double)sx * (x[at(j)] - xmax));
      for (int64_t j = 0; j < d; ++j) {
        long double v = std::exp((long double)sx * (x[at(j)] - xmax)) * inv / sum;
        long double lo = std::floor(v), frac = v - lo;
        auto code_of = [&](long double r) {
          long double c = r + zy;
          return std::is_same_v<T, uint8_t> ? std::min<long double>(c, 255) : std::clamp<long double>(c, -128, 127);
        };
        long double got = y[at(j)];
        if (std::fabs(frac - 0.5L) > tol * v + 1e-30L) {
          ASSERT_EQ(got, code_of(frac > 0.5L ? lo + 1 : lo)) << "row (" << o << ", " << i << ") element " << j
                                                            << ": exact value " << (double)v;
          ++*exact;
        } else {
          ASSERT_TRUE(got == code_of(lo) || got == code_of(lo + 1)) << "near a tie: " << (double)v;
          ++*near_tie;
        }
      }
    }
}

TEST(IntSoftmax, KernelMatchesItsFormula) {
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> sxs(0.005f, 0.3f), inv(120.f, 255.f);
  int64_t exact = 0, near_tie = 0;
  for (int rep = 0; rep < 40; ++rep) {
    int64_t d = 2 + rep * 7 % 97, inner = rep % 3 == 0 ? 3 : 1;  // inv <= 255 < d e^5: no overflow
    float sx = sxs(rng), sy = 1.0f / inv(rng);
    check_case<uint8_t>(rng, 5, d, inner, sx, sy, 0, &exact, &near_tie);
    check_case<int8_t>(rng, 5, d, inner, sx, sy, -128, &exact, &near_tie);
  }
  // Saturation: floor(1 / s_y) = 300, so a row dominated by one element gives 300 (uint8: 255) or 300 - 128
  // (int8: 127); rows of 3 and 4 keep 300 below d e^5 (no overflow).
  for (int64_t d : {3, 4}) {
    check_case<uint8_t>(rng, 30, d, 2, 0.1f, 1.0f / 300.5f, 0, &exact, &near_tie);
    check_case<int8_t>(rng, 30, d, 2, 0.1f, 1.0f / 300.5f, -128, &exact, &near_tie);
  }
  EXPECT_GT(exact, 100 * std::max<int64_t>(1, near_tie)) << "the comparison must be decided mostly exactly";
}

TEST(IntSoftmax, OverflowGivesWhatTheTargetGives) {
  // One element per row: e * inv = table[255] * 300 = 300 FLT_MAX / e^5 overflows to +inf (kernels/int_softmax.h).
  SoftmaxTable t = make_softmax_table(0.1f, 1);
  uint8_t xu[2] = {7, 200}, yu[2];
  softmax_exp_table(xu, yu, 2, 1, 1, t, 1.0f / 300.5f, 3);
  EXPECT_EQ(yu[0], 3);
  EXPECT_EQ(yu[1], 3);
  int8_t xs[2] = {-7, 100}, ys[2];
  softmax_exp_table(xs, ys, 2, 1, 1, t, 1.0f / 300.5f, -128);
  EXPECT_EQ(ys[0], 127);
  EXPECT_EQ(ys[1], 127);
  // Below the overflow (inv = 140 < e^5), a row of one element is probability 1: inv + z_y.
  softmax_exp_table(xu, yu, 2, 1, 1, t, 1.0f / 140.5f, 3);
  EXPECT_EQ(yu[0], 143);
}

TEST(IntSoftmax, TableIsExpOfCodeDistanceTimesHeadroom) {
  // table[255] = e^c, table[k] / table[255] = e^{s_x (k - 255)}: exp of the code distance to the row maximum.
  float sx = 0.05f;
  int64_t d = 64;
  SoftmaxTable t = make_softmax_table(sx, d);
  double c = std::max(0.0, std::log((double)(FLT_MAX / (float)d)) - 5.0);
  EXPECT_NEAR(t.exp[255], std::exp(c), std::exp(c) * 1e-6);
  for (int k = 0; k < 256; k += 17) EXPECT_NEAR(t.exp[k] / t.exp[255], std::exp(sx * (k - 255.0)), 1e-6);
}

}  // namespace
}  // namespace lowbit
