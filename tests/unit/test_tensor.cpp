// Tensor storage, dtype conversion and half-precision rounding.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include <climits>

#include "core/checked.h"
#include "core/tensor.h"
#include "test_util.h"

using namespace lowbit;
using namespace lowbit::testing;

TEST(Half, ExactValuesRoundTrip) {
  for (float v : {0.f, -0.f, 1.f, -2.5f, 65504.f, 6.103515625e-05f /* min normal */, 5.960464477539063e-08f /* min subnormal */})
    EXPECT_EQ(half_to_float(float_to_half(v)), v) << v;
}

TEST(Half, RoundsToNearestEven) {
  // 1 + 2^-11 lies exactly between 1 and the next half (1 + 2^-10): ties go to the even mantissa (1).
  EXPECT_EQ(float_to_half(1.f + std::ldexp(1.f, -11)), float_to_half(1.f));
  // 1 + 3*2^-11 is between 1+2^-10 (odd) and 1+2^-9 (even): goes up.
  EXPECT_EQ(half_to_float(float_to_half(1.f + 3 * std::ldexp(1.f, -11))), 1.f + std::ldexp(1.f, -9));
  EXPECT_EQ(float_to_half(65520.f), 0x7c00);  // overflows to +inf
  EXPECT_TRUE(std::isnan(half_to_float(float_to_half(NAN))));
}

TEST(Half, AllHalfBitPatternsRoundTrip) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    float f = half_to_float((uint16_t)h);
    if (std::isnan(f)) continue;
    EXPECT_EQ(float_to_half(f), h) << std::hex << h;
  }
}

TEST(BFloat16, RoundsToNearestEven) {
  EXPECT_EQ(bfloat16_to_float(float_to_bfloat16(1.f)), 1.f);
  uint32_t bits = 0x3f808000;  // exactly halfway between 0x3f80 and 0x3f81 -> even (0x3f80)
  float f;
  std::memcpy(&f, &bits, 4);
  EXPECT_EQ(float_to_bfloat16(f), 0x3f80);
}

TEST(Tensor, CastTruncatesAndSaturates) {
  Tensor t = Tensor::from_vector<float>({4}, {1.7f, -1.7f, 300.f, -300.f});
  auto i8 = t.cast(DType::Int8).to_i64();
  EXPECT_EQ(i8, (std::vector<int64_t>{1, -1, 127, -128}));
  auto u8 = t.cast(DType::UInt8).to_i64();
  EXPECT_EQ(u8, (std::vector<int64_t>{1, 0, 255, 0}));
}

// Cast to int4/uint4 keeps the low 4 bits (ONNX Cast, opset 25: -9 -> 7, 8 -> -8 for int4; -1 -> 15 for uint4),
// and an int4 tensor reads back as its sign-extended values. Mutations caught: saturating instead of wrapping,
// int4 codes without sign extension (-1 read as 15).
TEST(Tensor, CastToFourBitsWrapsAndReadsBackSigned) {
  Tensor t = Tensor::from_vector<float>({6}, {-9.f, -8.f, -1.f, 7.f, 8.f, 2.9f});
  EXPECT_EQ(t.cast(DType::Int4).to_i64(), (std::vector<int64_t>{7, -8, -1, 7, -8, 2}));
  EXPECT_EQ(t.cast(DType::UInt4).to_i64(), (std::vector<int64_t>{7, 8, 15, 7, 8, 2}));
  EXPECT_EQ(t.cast(DType::Int4).cast(DType::Float32).to_f64(), (std::vector<double>{7, -8, -1, 7, -8, 2}));
  Tensor v = t.cast(DType::Int4).retyped(DType::Int8);
  EXPECT_EQ(v.data<int8_t>()[2], -1);
  EXPECT_THROW(t.retyped(DType::Int8), Error);  // float32 storage is not int8's
}

TEST(Tensor, ReshapeSharesBufferAndChecksSize) {
  Tensor t = Tensor::from_vector<int32_t>({2, 3}, {1, 2, 3, 4, 5, 6});
  Tensor r = t.reshaped({3, 2});
  EXPECT_EQ(r.raw(), t.raw());
  EXPECT_THROW(t.reshaped({4}), Error);
}

TEST(Tensor, WrongTypedAccessThrows) {
  Tensor t(DType::Float32, {2});
  EXPECT_THROW(t.data<int32_t>(), Error);
}

TEST(Tensor, SliceRowsAndConcatRowsAreInverse) {
  Tensor t = Tensor::from_vector<float>({4, 2}, {0, 1, 2, 3, 4, 5, 6, 7});
  Tensor a = t.slice_rows(0, 1), b = t.slice_rows(1, 4), e = t.slice_rows(2, 2);
  EXPECT_EQ(a.shape(), (Shape{1, 2}));
  EXPECT_EQ(b.shape(), (Shape{3, 2}));
  EXPECT_EQ(e.shape(), (Shape{0, 2}));
  EXPECT_EQ(std::vector<float>(b.span<float>().begin(), b.span<float>().end()), (std::vector<float>{2, 3, 4, 5, 6, 7}));
  b.data<float>()[0] = 99;  // a deep copy: the source is unchanged
  EXPECT_EQ(t.data<float>()[2], 2.f);
  b.data<float>()[0] = 2;
  Tensor j = concat_rows({a, e, b});
  EXPECT_EQ(j.shape(), t.shape());
  EXPECT_EQ(std::memcmp(j.raw(), t.raw(), t.nbytes()), 0);
}

TEST(Tensor, SliceRowsAndConcatRowsRejectBadInput) {
  Tensor t = Tensor::from_vector<float>({2, 3}, {0, 1, 2, 3, 4, 5});
  EXPECT_THROW(t.slice_rows(1, 3), Error);
  EXPECT_THROW(t.slice_rows(2, 1), Error);
  EXPECT_THROW(Tensor::scalar<float>(1.f).slice_rows(0, 0), Error);
  EXPECT_THROW(concat_rows({}), Error);
  EXPECT_THROW(concat_rows({t, Tensor::from_vector<float>({1, 2}, {0, 1})}), Error);  // trailing dims differ
  EXPECT_THROW(concat_rows({t, Tensor::from_vector<int32_t>({1, 3}, {0, 1, 2})}), Error);  // dtypes differ
}

// Issue 13: shape arithmetic never wraps. [2^32, 2^32] wrapped to 0 elements, so a kernel given such a shape
// indexed far past its (empty) buffer; a plain product in shape_numel fails this.
TEST(Tensor, ShapeProductsThatOverflowInt64AreErrors) {
  EXPECT_NE(error_of([] { shape_numel({int64_t(1) << 32, int64_t(1) << 32}); }).find("more elements than int64"),
            std::string::npos);
  EXPECT_NE(error_of([] { Tensor(DType::Float32, {int64_t(1) << 32, int64_t(1) << 32, 0}); }).find("int64"),
            std::string::npos);
  EXPECT_EQ(shape_numel({int64_t(1) << 31, int64_t(1) << 31}), int64_t(1) << 62);
  EXPECT_NE(error_of([] { shape_numel({3, -1}); }).find("negative dimension"), std::string::npos);
  EXPECT_NE(error_of([] { checked_mul(int64_t(1) << 62, 2, "ctx"); }).find("ctx: 4611686018427387904 * 2 overflows"),
            std::string::npos);
  EXPECT_NE(error_of([] { checked_add(INT64_MAX, 1, "ctx"); }).find("overflows"), std::string::npos);
  EXPECT_EQ(checked_add(INT64_MAX - 1, 1, "ctx"), INT64_MAX);
}

// Every allocation checks the memory budget first: a 2 MiB tensor under a 1 MiB budget is an error naming its
// shape and size (removing check_allocation from the constructor fails this), and the default budget returns.
TEST(Tensor, AllocationsAboveTheMemoryBudgetAreErrors) {
  int64_t before = memory_budget();
  set_memory_budget(1 << 20);
  std::string err = error_of([] { Tensor(DType::Float32, {512, 1024}); });
  EXPECT_NE(err.find("float32 tensor of shape [512,1024] needs 2.0 MiB"), std::string::npos) << err;
  EXPECT_NE(err.find("memory budget of 1.0 MiB"), std::string::npos) << err;
  EXPECT_NO_THROW(Tensor(DType::Float32, {256, 1024}));  // exactly the budget
  set_memory_budget(0);
  EXPECT_EQ(memory_budget(), before);
}
