// Quantization math: hand-computed encodings and property sweeps (idempotence, exact zero, error <= s/2).
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "quant/encoding.h"

using namespace lowbit;
using namespace lowbit::quant;

namespace {
QuantizerSpec spec(int bits, bool is_signed, bool symmetric, ScaleForm form = ScaleForm::Float) {
  QuantizerSpec s;
  s.grid = {bits, is_signed, false};
  s.symmetric = symmetric;
  s.scale_form = form;
  return s;
}
}  // namespace

TEST(Grid, Ranges) {
  EXPECT_EQ(Grid({8, true, false}).qmin(), -128);
  EXPECT_EQ(Grid({8, true, false}).qmax(), 127);
  EXPECT_EQ(Grid({8, true, true}).qmin(), -127);
  EXPECT_EQ(Grid({8, false, false}).qmax(), 255);
  EXPECT_EQ(Grid({8, false, true}).qmin(), 1);
  EXPECT_EQ(Grid({4, true, false}).qmin(), -8);
  EXPECT_EQ(Grid({4, true, false}).qmax(), 7);
  EXPECT_EQ(Grid({2, true, false}).qmin(), -2);
  EXPECT_EQ(Grid({2, true, false}).qmax(), 1);
  EXPECT_EQ(Grid({16, false, false}).qmax(), 65535);
  EXPECT_EQ(Grid({16, true, false}).qmin(), -32768);
}

TEST(ScaleZeroPoint, HandComputed) {
  auto [s1, z1] = scale_zero_point(-1.f, 0.5f, spec(8, true, true));  // symmetric int8: absmax / 127
  EXPECT_FLOAT_EQ(s1, 1.f / 127);
  EXPECT_EQ(z1, 0);
  // Asymmetric uint8 on [-1, 3]: s = 4/255, z = round(63.75) = 64; then 191 * s < 3 so s grows to 3/191.
  auto [s2, z2] = scale_zero_point(-1.f, 3.f, spec(8, false, false));
  EXPECT_EQ(z2, 64);
  EXPECT_FLOAT_EQ(s2, 3.f / 191);
  // Asymmetric on a positive-only range: widened to include 0, so z = qmin.
  auto [s3, z3] = scale_zero_point(0.5f, 2.55f, spec(8, false, false));
  EXPECT_EQ(z3, 0);
  EXPECT_FLOAT_EQ(s3, 0.01f);
  // Unsigned symmetric: z = 128, s = absmax / 127.
  auto [s4, z4] = scale_zero_point(-1.f, 2.f, spec(8, false, true));
  EXPECT_EQ(z4, 128);
  EXPECT_FLOAT_EQ(s4, 2.f / 127);
  // Power of two: 1/127 rounds up to 2^-6.
  auto [s5, z5] = scale_zero_point(-1.f, 1.f, spec(8, true, true, ScaleForm::PowerOfTwo));
  EXPECT_EQ(s5, 0.015625f);
  EXPECT_EQ(z5, 0);
  // All-zero range.
  auto [s6, z6] = scale_zero_point(0.f, 0.f, spec(8, false, false));
  EXPECT_EQ(s6, 1.f);
  EXPECT_EQ(z6, 0);
}

TEST(Rounding, IsANamedPolicy) {
  EXPECT_EQ(round_with(2.5f, Rounding::HalfToEven), 2.f);
  EXPECT_EQ(round_with(-2.5f, Rounding::HalfToEven), -2.f);
  EXPECT_EQ(round_with(2.5f, Rounding::HalfAwayFromZero), 3.f);
  EXPECT_EQ(round_with(-2.5f, Rounding::HalfAwayFromZero), -3.f);
  Grid g{8, true, false};
  EXPECT_EQ(quantize_one(0.25f, 0.1f, 0, g, Rounding::HalfToEven), 2);  // 2.5 -> 2
  EXPECT_EQ(quantize_one(1000.f, 0.1f, 0, g, Rounding::HalfToEven), 127);
  EXPECT_EQ(quantize_one(-1000.f, 0.1f, 0, g, Rounding::HalfToEven), -128);
  EXPECT_EQ(quantize_one(NAN, 0.1f, 3, g, Rounding::HalfToEven), 3);
}

TEST(Slices, PerChannelAndPerGroupLayout) {
  QuantizerSpec s = spec(8, true, true);
  s.granularity = Granularity::PerChannel;
  s.axis = 0;
  EXPECT_EQ(slice_index({2, 3}, s), (std::vector<int64_t>{0, 0, 0, 1, 1, 1}));
  s.axis = 1;
  EXPECT_EQ(slice_index({2, 3}, s), (std::vector<int64_t>{0, 1, 2, 0, 1, 2}));
  s.granularity = Granularity::PerGroup;
  s.group_size = 2;
  s.axis = 0;  // [N=2, K=4] weight, blocks of 2 along K
  EXPECT_EQ(slice_index({2, 4}, s), (std::vector<int64_t>{0, 0, 1, 1, 2, 2, 3, 3}));
  s.axis = 1;  // [K=4, N=2] weight (MatMul layout), channel axis 1, blocks of 2 along K
  EXPECT_EQ(slice_index({4, 2}, s), (std::vector<int64_t>{0, 2, 0, 2, 1, 3, 1, 3}));
  EXPECT_EQ(num_slices({4, 2}, s), 4);
  s.group_size = 3;  // ragged last block
  EXPECT_EQ(num_slices({2, 4}, s), 4);
}

TEST(Encoding, PerChannelMinMaxAndFakeQuant) {
  QuantizerSpec s = spec(8, true, true);
  s.granularity = Granularity::PerChannel;
  std::vector<float> w = {1.f, -0.5f, 0.25f, 10.f, 5.f, -2.f};  // two output channels
  auto ranges = minmax_per_slice(w.data(), {2, 3}, s);
  Encoding e = make_encoding(s, {2, 3}, ranges);
  ASSERT_EQ(e.num_slices(), 2);
  EXPECT_FLOAT_EQ(e.scale[0], 1.f / 127);
  EXPECT_FLOAT_EQ(e.scale[1], 10.f / 127);
  std::vector<int32_t> q(6);
  quantize(w.data(), q.data(), e);
  EXPECT_EQ(q, (std::vector<int32_t>{127, -64, 32, 127, 64, -25}));  // -63.5 -> -64 and 31.75 -> 32, 63.5 -> 64
  std::vector<float> y(6);
  fake_quantize(w.data(), y.data(), e);
  EXPECT_FLOAT_EQ(y[1], -64.f / 127);
}

TEST(Encoding, ValidationErrors) {
  EXPECT_THROW(scale_zero_point(0, 1, spec(1, true, true)), Error);
  EXPECT_THROW(scale_zero_point(0, 1, spec(17, true, true)), Error);
  EXPECT_THROW(scale_zero_point(1, 0, spec(8, true, true)), Error);
  EXPECT_THROW(scale_zero_point(0, INFINITY, spec(8, true, true)), Error);
  QuantizerSpec g = spec(8, true, true);
  g.granularity = Granularity::PerGroup;
  EXPECT_THROW(validate(g), Error);
  float bad[2] = {1.f, NAN};
  EXPECT_THROW(minmax_per_slice(bad, {2}, spec(8, true, true)), Error);
}

// Property sweep over bit widths, signedness, symmetry, scale forms, rounding and random ranges.
TEST(EncodingProperties, IdempotentExactZeroBoundedError) {
  std::mt19937 rng(123);
  std::uniform_real_distribution<float> mag(-6.f, 3.f);
  int cases = 0;
  for (int bits : {2, 3, 4, 6, 8, 12, 16})
    for (bool sgn : {true, false})
      for (bool sym : {true, false})
        for (auto form : {ScaleForm::Float, ScaleForm::PowerOfTwo})
          for (auto rnd : {Rounding::HalfToEven, Rounding::HalfAwayFromZero})
            for (int trial = 0; trial < 8; ++trial) {
              QuantizerSpec s = spec(bits, sgn, sym, form);
              s.rounding = rnd;
              float a = std::exp(mag(rng)) * (trial % 3 == 0 ? -1.f : 1.f), b = std::exp(mag(rng));
              float lo = std::min(a, b), hi = std::max(a, b);
              if (trial % 4 == 1) lo = -lo * 0.5f - 1e-3f;  // ranges straddling zero
              lo = std::min(lo, hi);
              auto [sc, z] = scale_zero_point(lo, hi, s);
              const Grid& g = s.grid;
              ASSERT_GT(sc, 0.f);
              ASSERT_GE(z, g.qmin());
              ASSERT_LE(z, g.qmax());
              float glo = dequantize_one(g.qmin(), sc, z), ghi = dequantize_one(g.qmax(), sc, z);
              // The calibrated range lies on the grid (no clipping of [lo, hi]; tolerance for float rounding).
              ASSERT_LE(glo, std::min(lo, 0.f) + 1e-6f * std::abs(lo)) << bits << " " << lo << " " << hi;
              ASSERT_GE(ghi, std::max(hi, 0.f) - 1e-6f * std::abs(hi)) << bits << " " << lo << " " << hi;
              // Real zero is exactly representable.
              ASSERT_EQ(dequantize_one(quantize_one(0.f, sc, z, g, rnd), sc, z), 0.f);
              std::uniform_real_distribution<float> in(glo, ghi);
              for (int k = 0; k < 50; ++k) {
                float x = in(rng);
                float y = dequantize_one(quantize_one(x, sc, z, g, rnd), sc, z);
                // error <= s/2, plus the float32 rounding of x / s and s * (q - z): a few ulps of |x|
                ASSERT_LE(std::abs(y - x), sc / 2 + std::ldexp(std::abs(x) + sc, -21)) << x;
                ASSERT_EQ(dequantize_one(quantize_one(y, sc, z, g, rnd), sc, z), y) << x;  // idempotent
              }
              ++cases;
            }
  EXPECT_EQ(cases, 7 * 2 * 2 * 2 * 2 * 8);
}

TEST(Fp16, RoundsToHalf) {
  float x[3] = {1.f, 1.f + 1.f / 4096, 70000.f}, y[3];
  fake_quantize_fp16(x, y, 3);
  EXPECT_EQ(y[0], 1.f);
  EXPECT_EQ(y[1], 1.f);  // below half precision's resolution at 1
  EXPECT_TRUE(std::isinf(y[2]));
}
