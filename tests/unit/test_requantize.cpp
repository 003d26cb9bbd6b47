// The requantization primitive (kernels/requantize.h) against exact arithmetic written independently here:
// 128-bit products and rational rounding for the fixed-point and shift forms, gemmlowp's two published steps for
// half-away fixed point, float32 arithmetic for the float form. Mutations caught: a tie rounded the wrong way in
// any mode, a shift off by one, a Q31 multiplier not normalised to [2^30, 2^31), a missing zero point or clamp.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <tuple>

#include "core/error.h"
#include "kernels/requantize.h"

namespace lowbit {
namespace {

// round(num / 2^s) for an exact 128-bit numerator, ties as `r`.
int64_t exact_round(__int128 num, int s, TieRounding r) {
  __int128 d = (__int128)1 << s;
  __int128 fl = num >= 0 ? num / d : -((-num + d - 1) / d);  // floor
  __int128 rem = num - fl * d;                                // [0, d)
  if (2 * rem > d) return (int64_t)(fl + 1);
  if (2 * rem < d) return (int64_t)fl;
  if (r == TieRounding::HalfUp) return (int64_t)(fl + 1);
  if (r == TieRounding::HalfEven) return (int64_t)((fl % 2 == 0) ? fl : fl + 1);
  return (int64_t)(fl >= 0 ? fl + 1 : fl);  // half away: fl + 1/2 is negative iff fl < 0
}

int32_t clamp(int64_t v, int32_t lo, int32_t hi) { return (int32_t)std::min<int64_t>(std::max<int64_t>(v, lo), hi); }

TEST(Requantize, TiesFollowTheNamedRuleInEveryForm) {
  // acc * M = +-2.5 and +-1.5 exactly in each form (M = 1/4; in the fixed-point form the Q31 step is exact for
  // even accumulators and the tie falls to the final shift).
  for (auto kind : {RequantKind::Float, RequantKind::FixedPoint, RequantKind::Shift}) {
    auto even = make_requant(0.25, kind, TieRounding::HalfEven, "t");
    auto away = make_requant(0.25, kind, TieRounding::HalfAway, "t");
    auto up = make_requant(0.25, kind, TieRounding::HalfUp, "t");
    EXPECT_EQ(requantize(10, even, 0, -100, 100), 2);
    EXPECT_EQ(requantize(10, away, 0, -100, 100), 3);
    EXPECT_EQ(requantize(10, up, 0, -100, 100), 3);
    EXPECT_EQ(requantize(6, even, 0, -100, 100), 2);
    EXPECT_EQ(requantize(-10, even, 0, -100, 100), -2);
    EXPECT_EQ(requantize(-10, away, 0, -100, 100), -3);
    EXPECT_EQ(requantize(-10, up, 0, -100, 100), -2);
    EXPECT_EQ(requantize(-6, even, 0, -100, 100), -2);
    // Zero point added after rounding, then the clamp.
    EXPECT_EQ(requantize(10, even, 10, -100, 100), 12);
    EXPECT_EQ(requantize(4000, even, 10, 0, 255), 255);
    EXPECT_EQ(requantize(-4000, even, 10, 0, 255), 0);
  }
  // gemmlowp's Q31 step itself rounds ties towards +infinity (its nudge for negative products is 1 - 2^30): with
  // M = 1/2 (no final shift) -2.5 becomes -2, as TFLite computes it.
  auto gemmlowp = make_requant(0.5, RequantKind::FixedPoint, TieRounding::HalfAway, "t");
  EXPECT_EQ(requantize(-5, gemmlowp, 0, -100, 100), -2);
  EXPECT_EQ(requantize(5, gemmlowp, 0, -100, 100), 3);
}

TEST(Requantize, FixedPointMultiplierIsNormalisedQ31) {
  std::mt19937_64 rng(1);
  std::uniform_real_distribution<double> e(-20, 3);
  for (int i = 0; i < 2000; ++i) {
    double m = std::exp2(e(rng));
    auto p = make_requant(m, RequantKind::FixedPoint, TieRounding::HalfAway, "t");
    ASSERT_GE(p.m0, 1 << 30);
    ASSERT_LT((int64_t)p.m0, (int64_t)1 << 31);
    double rep = std::ldexp((double)p.m0, -(31 + p.shift));
    ASSERT_LE(std::abs(rep - m), std::ldexp(m, -31)) << m;  // the mantissa rounded to 31 bits
  }
}

TEST(Requantize, FixedPointIsExactRationalRoundingOfTheQ31Product) {
  std::mt19937_64 rng(2);
  std::uniform_real_distribution<double> e(-18, 2);
  std::uniform_int_distribution<int32_t> acc(-(1 << 24), 1 << 24);
  for (auto r : {TieRounding::HalfEven, TieRounding::HalfUp}) {
    for (int i = 0; i < 20000; ++i) {
      auto p = make_requant(std::exp2(e(rng)), RequantKind::FixedPoint, r, "t");
      int32_t a = i % 7 == 0 ? (int32_t)(((int64_t)1 << (31 + std::max(p.shift, 0))) / p.m0) : acc(rng);  // near ties
      int64_t want = exact_round((__int128)a * p.m0, 31 + p.shift, r);
      ASSERT_EQ(requantize(a, p, 3, INT32_MIN, INT32_MAX), clamp(want + 3, INT32_MIN, INT32_MAX)) << a;
    }
  }
}

// gemmlowp / TFLite: SaturatingRoundingDoublingHighMul (nearest of a*b / 2^31, ties towards +infinity), then
// RoundingDivideByPOT (nearest, ties away from zero) by the right shift; a left shift multiplies first.
TEST(Requantize, FixedPointHalfAwayIsGemmlowpsTwoSteps) {
  std::mt19937_64 rng(3);
  std::uniform_real_distribution<double> e(-18, 4);
  std::uniform_int_distribution<int32_t> acc(-(1 << 22), 1 << 22);
  for (int i = 0; i < 20000; ++i) {
    auto p = make_requant(std::exp2(e(rng)), RequantKind::FixedPoint, TieRounding::HalfAway, "t");
    int32_t a = i % 5 == 0 ? 2 * (acc(rng) | 1) + 1 : acc(rng);
    if (i % 11 == 0) p = make_requant(0.5, RequantKind::FixedPoint, TieRounding::HalfAway, "t");  // step-1 ties
    int64_t x = p.shift < 0 ? (int64_t)a * ((int64_t)1 << -p.shift) : a;
    int64_t high = exact_round((__int128)x * p.m0, 31, TieRounding::HalfUp);
    int64_t want = exact_round(high, std::max(p.shift, 0), TieRounding::HalfAway);
    ASSERT_EQ(requantize(a, p, 0, INT32_MIN, INT32_MAX), want) << a << " " << p.m0 << " " << p.shift;
  }
}

TEST(Requantize, FloatFormIsFloat32ProductRounded) {
  std::mt19937_64 rng(4);
  std::uniform_real_distribution<double> e(-16, 0);
  std::uniform_int_distribution<int32_t> acc(-(1 << 20), 1 << 20);
  for (int i = 0; i < 20000; ++i) {
    auto p = make_requant(std::exp2(e(rng)), RequantKind::Float, TieRounding::HalfEven, "t");
    int32_t a = acc(rng);
    float v = (float)a * p.scale;
    ASSERT_EQ(requantize(a, p, -7, INT32_MIN, INT32_MAX), (int32_t)std::nearbyint(v) - 7);  // default mode: ties to even
  }
}

TEST(Requantize, ShiftNeedsPowerOfTwoAndIsExact) {
  EXPECT_THROW(make_requant(0.3, RequantKind::Shift, TieRounding::HalfUp, "layer"), Error);
  std::mt19937_64 rng(5);
  std::uniform_int_distribution<int32_t> acc(-(1 << 24), 1 << 24);
  for (int k = -4; k < 20; ++k) {
    auto p = make_requant(std::ldexp(1.0, -k), RequantKind::Shift, TieRounding::HalfUp, "t");
    ASSERT_EQ(p.shift, k);
    for (int i = 0; i < 500; ++i) {
      int32_t a = acc(rng);
      int64_t want = k >= 0 ? exact_round(a, k, TieRounding::HalfUp) : (int64_t)a * (1 << -k);
      ASSERT_EQ(requantize(a, p, 0, INT32_MIN, INT32_MAX), clamp(want, INT32_MIN, INT32_MAX));
    }
  }
}

// Integer Add (requantize_add), every 8-bit code pair a, b (uint8 grids with zero points 3 and 200).
struct AddCase {
  int ka, kb, ky;  // scales 2^-k
};

TEST(RequantizeAdd, ShiftIsExactRationalRounding) {
  // Power-of-two scales: exact on the finer input grid, then the tie rule; output finer, coarser and between.
  for (AddCase c : {AddCase{3, 5, 2}, AddCase{5, 3, 2}, AddCase{4, 4, 6}, AddCase{2, 7, 4}}) {
    for (TieRounding r : {TieRounding::HalfUp, TieRounding::HalfEven, TieRounding::HalfAway}) {
      AddRequant p = make_add_requant(std::ldexp(1.f, -c.ka), std::ldexp(1.f, -c.kb), std::ldexp(1.f, -c.ky),
                                      RequantKind::Shift, r, "add");
      p.za = 3, p.zb = 200, p.zy = 128, p.qmin = 0, p.qmax = 255;
      int km = std::max(c.ka, c.kb);
      for (int a = 0; a < 256; ++a)
        for (int b = 0; b < 256; ++b) {
          int64_t num = (int64_t)(a - 3) * (1 << (km - c.ka)) + (int64_t)(b - 200) * (1 << (km - c.kb));
          int64_t q = km >= c.ky ? exact_round(num, km - c.ky, r) : num * (1 << (c.ky - km));
          ASSERT_EQ(requantize_add(a, b, p), clamp(q + 128, 0, 255)) << a << " " << b << " case " << c.ka << c.kb << c.ky;
        }
    }
  }
  EXPECT_THROW(make_add_requant(0.1f, 0.25f, 0.5f, RequantKind::Shift, TieRounding::HalfUp, "add"), Error);
  EXPECT_THROW(make_add_requant(1.f, std::ldexp(1.f, -24), 1.f, RequantKind::Shift, TieRounding::HalfUp, "add"), Error);
}

TEST(RequantizeAdd, FloatIsTheDequantizeAddQuantizeOfTheQdqFile) {
  // float32: s_a * (a - z_a) + s_b * (b - z_b), divided by s_y, ties to even (std::nearbyint in the default
  // rounding mode, as QuantizeLinear), or away from zero (std::round).
  const float sa = 0.0371f, sb = 0.0123f, sy = 0.0417f;
  for (TieRounding r : {TieRounding::HalfEven, TieRounding::HalfAway}) {
    AddRequant p = make_add_requant(sa, sb, sy, RequantKind::Float, r, "add");
    p.za = 3, p.zb = 200, p.zy = 10, p.qmin = 10, p.qmax = 255;  // qmin = zy: a fused Relu
    for (int a = 0; a < 256; ++a)
      for (int b = 0; b < 256; ++b) {
        float v = (sa * (float)(a - 3) + sb * (float)(b - 200)) / sy;
        float q = r == TieRounding::HalfEven ? std::nearbyint(v) : std::round(v);
        ASSERT_EQ(requantize_add(a, b, p), clamp((int64_t)q + 10, 10, 255)) << a << " " << b;
      }
  }
}

TEST(RequantizeAdd, FixedPointIsTheRealSumExceptNearTies) {
  // TFLite's integer Add keeps 20 fractional bits and Q31 multipliers: its result is the real sum rounded,
  // except within a small distance of a tie (the multipliers' 2^-31 relative error times 2^20-scaled sums).
  for (auto [sa, sb, sy] : {std::tuple{0.0371f, 0.0123f, 0.0417f}, std::tuple{0.002f, 0.09f, 0.05f},
                            std::tuple{0.5f, 0.5f, 0.003f}}) {
    AddRequant p = make_add_requant(sa, sb, sy, RequantKind::FixedPoint, TieRounding::HalfAway, "add");
    p.za = 3, p.zb = 200, p.zy = 128, p.qmin = 0, p.qmax = 255;
    int64_t exact = 0, near_tie = 0;
    for (int a = 0; a < 256; ++a)
      for (int b = 0; b < 256; ++b) {
        long double v = ((long double)sa * (a - 3) + (long double)sb * (b - 200)) / (long double)sy;
        long double frac = v - std::floor(v);
        int32_t got = requantize_add(a, b, p);
        if (std::fabs((double)frac - 0.5) > 1e-4) {
          ASSERT_EQ(got, clamp((int64_t)std::llround((double)v) + 128, 0, 255)) << a << " " << b << " sa " << sa;
          ++exact;
        } else {
          ASSERT_LE(std::abs(got - clamp((int64_t)std::floor((double)v) + 128, 0, 255)), 1);
          ++near_tie;
        }
      }
    EXPECT_GT(exact, 50 * near_tie);
  }
}

TEST(RequantizeMul, ShiftIsExactAndFloatAddsTheZeroPointBeforeRounding) {
  // Shift: s_a s_b / s_y = 2^-3 exactly, every pair of codes against exact rational rounding with each tie rule.
  for (TieRounding r : {TieRounding::HalfUp, TieRounding::HalfEven, TieRounding::HalfAway}) {
    MulRequant p = make_mul_requant(0.25f, 0.125f, 0.25f, RequantKind::Shift, r, "mul");
    p.za = 3, p.zb = 200, p.zy = 128, p.qmin = 0, p.qmax = 255;
    for (int a = 0; a < 256; ++a)
      for (int b = 0; b < 256; ++b)
        ASSERT_EQ(requantize_mul(a, b, p), clamp(exact_round((int64_t)(a - 3) * (b - 200), 3, r) + 128, 0, 255));
  }
  EXPECT_THROW(make_mul_requant(0.1f, 0.25f, 0.5f, RequantKind::Shift, TieRounding::HalfUp, "mul"), Error);
  // Float (ONNX Runtime's QLinearMul): nearbyint(float(acc) * float32(s_a s_b / s_y) + z_y). With M = 1/2 and an
  // odd z_y a tie k + 1/2 becomes k + z_y + 1/2, rounded to even: not round(k + 1/2) + z_y.
  MulRequant f = make_mul_requant(0.25f, 0.5f, 0.25f, RequantKind::Float, TieRounding::HalfEven, "mul");
  f.za = 0, f.zb = 0, f.zy = 7, f.qmin = 0, f.qmax = 255;
  EXPECT_EQ(requantize_mul(1, 5, f), 10);  // 2.5 + 7 = 9.5 -> 10 (rounding first: 2 + 7 = 9)
  for (int a = 0; a < 256; ++a)
    for (int b = 0; b < 256; b += 7)
      ASSERT_EQ(requantize_mul(a, b, f), clamp((int64_t)std::nearbyint((float)(a * b) * 0.5f + 7.f), 0, 255));
}

TEST(RequantizeMul, FixedPointIsTheRealProductExceptNearTies) {
  const float sa = 0.0371f, sb = 0.0123f, sy = 0.0217f;
  MulRequant p = make_mul_requant(sa, sb, sy, RequantKind::FixedPoint, TieRounding::HalfEven, "mul");
  p.za = 3, p.zb = 200, p.zy = 128, p.qmin = 0, p.qmax = 255;
  for (int a = 0; a < 256; ++a)
    for (int b = 0; b < 256; ++b) {
      long double v = (long double)sa * sb * (a - 3) * (b - 200) / sy;
      if (std::fabs((double)(v - std::floor(v)) - 0.5) < 1e-4) continue;
      ASSERT_EQ(requantize_mul(a, b, p), clamp((int64_t)std::llround((double)v) + 128, 0, 255)) << a << " " << b;
    }
}

// requantize_run (the vectorised loop of the integer engine's Conv/Gemm/MatMul), in each instruction set's build
// the CPU runs, gives requantize()'s code for every accumulator: exact ties of the float product (m = 0.5, 0.25, 1.5: half-way values of both parities), products past
// the 2^22 clamp of the fast loop (they must saturate the same), both code types, and the other forms (fixed point,
// shift, other tie rules) that keep the per-element path. Mutations caught: ties rounded away from zero in the fast
// loop, the clamp at 2^22 dropped (a product near 2^31 then converts wrongly), the zero point added before rounding.
TEST(Requantize, RunOfAccumulatorsEqualsThePerElementPrimitive) {
  std::vector<int32_t> acc;
  for (int32_t a = -600; a <= 600; ++a) acc.push_back(a);
  for (int32_t a : {INT32_MIN, INT32_MIN + 1, -16777217, -8388609, -4194305, 4194305, 8388609, 16777217, INT32_MAX})
    acc.push_back(a);
  int compared = 0;
  for (float m : {0.5f, 0.25f, 1.5f, 0.0123f, 3.7e-5f, 1000.f}) {
    for (RequantKind kind : {RequantKind::Float, RequantKind::FixedPoint})
      for (TieRounding r : {TieRounding::HalfEven, TieRounding::HalfAway}) {
        RequantParams p = make_requant(m, kind, r, "test");
        for (auto [zp, lo, hi] : {std::tuple{3, 0, 255}, std::tuple{-5, -128, 127}, std::tuple{0, -127, 127}}) {
          for (IntIsa isa : {IntIsa::Scalar, IntIsa::Avx2, IntIsa::Avx512Vnni}) {
            if (!int_isa_supported(isa)) continue;
            std::vector<int8_t> s8(acc.size());
            std::vector<uint8_t> u8(acc.size());
            if (lo < 0) requantize_run(acc.data(), (int64_t)acc.size(), p, zp, lo, hi, s8.data(), isa);
            else requantize_run(acc.data(), (int64_t)acc.size(), p, zp, lo, hi, u8.data(), isa);
            for (size_t i = 0; i < acc.size(); ++i) {
              int32_t want = requantize(acc[i], p, zp, lo, hi);
              ASSERT_EQ(lo < 0 ? (int32_t)s8[i] : (int32_t)u8[i], want) << "acc " << acc[i] << " m " << m << " kind "
                                                                       << (int)kind << " rounding " << (int)r << " "
                                                                       << int_isa_name(isa);
            }
          }
          ++compared;
        }
      }
  }
  EXPECT_EQ(compared, 6 * 2 * 2 * 3);
}

}  // namespace
}  // namespace lowbit
