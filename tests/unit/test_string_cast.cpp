// String tensors: Cast to and from numbers (core/string_cast.h), their storage, their ONNX proto form, and the
// refusal of every kernel that would have to allocate one.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>

#include "core/string_cast.h"
#include "ir/builder.h"
#include "ir/tensor_proto.h"
#include "runtime/executor.h"
#include "test_util.h"

using namespace lowbit;
using namespace lowbit::testing;

namespace {
std::vector<std::string> as_strings(const Tensor& t) { return t.cast(DType::String).strings(); }
Tensor strings(std::vector<std::string> v) {
  Shape shape{(int64_t)v.size()};
  return Tensor::from_strings(shape, std::move(v));
}
}  // namespace

// The forms of ONNX's test data (the shortest that reads back). Mutations caught: printf's "%.8g" (ONNX Runtime's
// form) gives "0.60484552", "%.9g" also "9.99999975e-06" for 1e-5f; std::to_chars in fixed form gives
// "100000002004087734272" for 1e20f; dropping the special cases gives "nan" / "inf".
TEST(StringCast, FloatsPrintTheirShortestForm) {
  EXPECT_EQ(as_strings(Tensor::from_vector<float>({9}, {0.6048455f, 0.039187793f, 1e-5f, 3.f, -0.f, 1e20f, NAN,
                                                         INFINITY, -INFINITY})),
            (std::vector<std::string>{"0.6048455", "0.039187793", "1e-05", "3", "-0", "1e+20", "NaN", "INF", "-INF"}));
  EXPECT_EQ(as_strings(Tensor::from_vector<double>({2}, {0.1, 1e-7})), (std::vector<std::string>{"0.1", "1e-07"}));
  // float16 through its float32 value (0.1 is 0.0999755859375 in float16).
  EXPECT_EQ(as_strings(Tensor::from_vector<float>({1}, {0.1f}).cast(DType::Float16)),
            (std::vector<std::string>{"0.099975586"}));
}

TEST(StringCast, IntegersAndBoolsPrintInDecimal) {
  EXPECT_EQ(as_strings(Tensor::from_vector<int8_t>({3}, {-128, 0, 127})), (std::vector<std::string>{"-128", "0", "127"}));
  EXPECT_EQ(as_strings(Tensor::from_vector<uint8_t>({1}, {255})), (std::vector<std::string>{"255"}));
  EXPECT_EQ(as_strings(Tensor::from_vector<uint64_t>({1}, {std::numeric_limits<uint64_t>::max()})),
            (std::vector<std::string>{"18446744073709551615"}));
  EXPECT_EQ(as_strings(Tensor::from_vector<int64_t>({1}, {std::numeric_limits<int64_t>::min()})),
            (std::vector<std::string>{"-9223372036854775808"}));
  EXPECT_EQ(as_strings(Tensor::from_vector<bool>({2}, {true, false})), (std::vector<std::string>{"1", "0"}));
  EXPECT_EQ(as_strings(Tensor::from_vector<int8_t>({2}, {-3, 7}).retyped(DType::Int4)),
            (std::vector<std::string>{"-3", "7"}));
}

// float32 -> string -> float32 and float64 -> string -> float64 give back every bit (NaN aside, which prints as
// "NaN"): 200k random bit patterns each, subnormals and extremes included. Eight digits (ONNX Runtime's "%.8g")
// fail this for float32.
TEST(StringCast, FloatsRoundTripBitExactly) {
  std::mt19937_64 rng(7);
  std::vector<float> f;
  std::vector<double> d;
  for (int i = 0; i < 200000; ++i) {
    uint32_t b = (uint32_t)rng();
    uint64_t b64 = rng();
    float x;
    double y;
    std::memcpy(&x, &b, 4);
    std::memcpy(&y, &b64, 8);
    if (!std::isnan(x)) f.push_back(x);
    if (!std::isnan(y)) d.push_back(y);
  }
  for (float x : {std::numeric_limits<float>::denorm_min(), std::numeric_limits<float>::max(),
                  std::numeric_limits<float>::min(), -0.f})
    f.push_back(x);
  Tensor tf = Tensor::from_vector<float>({(int64_t)f.size()}, f);
  Tensor td = Tensor::from_vector<double>({(int64_t)d.size()}, d);
  EXPECT_TRUE(tf.cast(DType::String).cast(DType::Float32).bit_equal(tf));
  EXPECT_TRUE(td.cast(DType::String).cast(DType::Float64).bit_equal(td));
  EXPECT_TRUE(std::isnan(strings({"NaN"}).cast(DType::Float32).data<float>()[0]));
}

// Parsing as strtod does: white space, a sign, hex floats, the special words in any case, the longest numeric
// prefix. Mutations caught: no space skipping, '+' not accepted, hex read as decimal (0), case-sensitive words,
// trailing text an error.
TEST(StringCast, ParsesNumbersAsStrtodDoes) {
  Tensor t = strings({" 2.5", "+7", "0x10", "INF", "+inf", "-Infinity", "1.5e", ".25", "-1E3", "0x1p-2"});
  EXPECT_EQ(t.cast(DType::Float32).to_f64(),
            (std::vector<double>{2.5, 7, 16, INFINITY, INFINITY, -INFINITY, 1.5, 0.25, -1000, 0.25}));
  EXPECT_EQ(t.cast(DType::Float64).to_f64(),
            (std::vector<double>{2.5, 7, 16, INFINITY, INFINITY, -INFINITY, 1.5, 0.25, -1000, 0.25}));
  EXPECT_TRUE(std::isnan(strings({"nan"}).cast(DType::Float64).to_f64()[0]));
  // Rounded once, to float32: 1 + 2^-24 + 1e-26 lies above the midpoint of 1 and 1 + 2^-23; read as a double first
  // it becomes the midpoint itself, which then ties to even (1).
  EXPECT_EQ(strings({"1.00000005960464477539062501"}).cast(DType::Float32).data<float>()[0], 1.f + std::ldexp(1.f, -23));
  EXPECT_EQ(strings({"0.1"}).cast(DType::Float32).data<float>()[0], 0.1f);
  // float16 rounds the float32 value, as Cast from float32 does.
  EXPECT_TRUE(strings({"0.1"}).cast(DType::Float16).bit_equal(Tensor::from_vector<float>({1}, {0.1f}).cast(DType::Float16)));
}

// Integers as strtoll does (base 10, up to the first other character); bool reads an integer; narrower types wrap
// as Cast from int64 does.
TEST(StringCast, ParsesIntegersAsStrtollDoes) {
  EXPECT_EQ(strings({"1.5", "+4", " -12", "007"}).cast(DType::Int32).to_i64(), (std::vector<int64_t>{1, 4, -12, 7}));
  EXPECT_EQ(strings({"300", "-1"}).cast(DType::UInt8).to_i64(), (std::vector<int64_t>{44, 255}));
  EXPECT_EQ(strings({"2", "0", "-1"}).cast(DType::Bool).to_i64(), (std::vector<int64_t>{1, 0, 1}));
  EXPECT_EQ(strings({"18446744073709551615"}).cast(DType::UInt64).data<uint64_t>()[0],
            std::numeric_limits<uint64_t>::max());
  EXPECT_EQ(strings({"-9223372036854775808"}).cast(DType::Int64).data<int64_t>()[0],
            std::numeric_limits<int64_t>::min());
  EXPECT_EQ(strings({"-3", "9"}).cast(DType::Int4).to_i64(), (std::vector<int64_t>{-3, -7}));  // low 4 bits
}

// A string with no number in front is an error naming the element and the target, never a silent 0.
TEST(StringCast, NonNumbersAreErrorsNamingTheElement) {
  std::string e = error_of([] { strings({"1", "hello"}).cast(DType::Float32); });
  EXPECT_NE(e.find("element 1 ('hello') to float32"), std::string::npos) << e;
  for (const char* bad : {"", "  ", "+-3", "-", ".", "e5"})
    EXPECT_NE(error_of([&] { strings({bad}).cast(DType::Float64); }).find("element 0 ('"), std::string::npos) << bad;
  for (const char* bad : {"true", "", "x1", "+-1", ".5"})
    EXPECT_NE(error_of([&] { strings({bad}).cast(DType::Bool); }).find("element 0 ('"), std::string::npos) << bad;
  EXPECT_NE(error_of([] { strings({"9223372036854775808"}).cast(DType::Int64); }).find("range"), std::string::npos);
}

// Out of range, floats saturate as strtof does (and ONNX Runtime): to +-inf, or to 0 below the smallest subnormal.
TEST(StringCast, FloatsBeyondTheRangeBecomeInfinityOrZero) {
  EXPECT_EQ(strings({"1e39", "-1e39", "1e-50", "0x1p200", "1e-45"}).cast(DType::Float32).to_f64(),
            (std::vector<double>{INFINITY, -INFINITY, 0, INFINITY, (double)std::numeric_limits<float>::denorm_min()}));
  EXPECT_EQ(strings({"1e400", "-1e-400"}).cast(DType::Float64).to_f64(), (std::vector<double>{INFINITY, -0.0}));
  EXPECT_TRUE(std::signbit(strings({"-1e-400"}).cast(DType::Float64).to_f64()[0]));
}

// Strings are stored as values: slicing, joining, copying and comparing see them (a byte-buffer path would give
// empty strings or compare equal on any two string tensors of one shape).
TEST(StringTensor, RowsCopiesAndEqualityUseTheStrings) {
  Tensor t = Tensor::from_strings({3, 2}, {"a", "b", "c", "", "e", std::string("f\0g", 3)});
  EXPECT_EQ(t.slice_rows(1, 3).strings(), (std::vector<std::string>{"c", "", "e", std::string("f\0g", 3)}));
  EXPECT_TRUE(concat_rows({t.slice_rows(0, 1), t.slice_rows(1, 3)}).bit_equal(t));
  EXPECT_TRUE(t.clone().bit_equal(t));
  EXPECT_FALSE(t.bit_equal(Tensor::from_strings({3, 2}, {"a", "b", "c", "", "e", "f"})));
  EXPECT_EQ(t.reshaped({6}).strings()[5], std::string("f\0g", 3));
  EXPECT_THROW(Tensor::from_strings({2}, {"only one"}), Error);
  EXPECT_THROW(t.data<float>(), Error);
  EXPECT_THROW(Tensor::from_vector<float>({1}, {1.f}).strings(), Error);
}

// No kernel can make a string tensor out of bytes: allocating one is Unsupported, so a Transpose of strings stops
// with the node named instead of returning empty strings.
TEST(StringTensor, KernelsCannotAllocateStrings) {
  EXPECT_THROW(Tensor(DType::String, {2}), Unsupported);
  EXPECT_THROW(Tensor::uninitialized(DType::String, {2}), Unsupported);
  GraphBuilder b(13);
  b.input("s", DType::String, {2, 1});
  b.output(b.node("Transpose", {"s"}, {}, 1, "tr"), DType::String);
  try {
    Executor(b.build()).run({{"s", Tensor::from_strings({2, 1}, {"x", "y"})}});
    FAIL();
  } catch (const Unsupported& e) {
    EXPECT_NE(std::string(e.what()).find("'tr'"), std::string::npos) << e.what();
  }
}

// Through the executor: Cast, CastLike, Equal on strings and a Constant of strings, with Reshape passing strings on.
TEST(StringTensor, CastEqualAndConstantRunInGraphs) {
  GraphBuilder b(19);
  b.input("x", DType::Float32, {2, 2});
  std::string s = b.node("Cast", {"x"}, {attr_int("to", (int64_t)DType::String)}, 1, "to_str");
  std::string shape = b.initializer("shape", Tensor::from_vector<int64_t>({1}, {4}));
  std::string flat = b.node("Reshape", {s, shape}, {}, 1, "flat");
  Attribute strs;
  strs.name = "value_strings";
  strs.type = AttrType::Strings;
  strs.strings = {"0.5", "x", "-2", "1e+20"};
  std::string k = b.node("Constant", {}, {strs}, 1, "k");
  b.output(b.node("Equal", {flat, k}, {}, 1, "eq"), DType::Bool);
  b.output(b.node("Cast", {flat}, {attr_int("to", (int64_t)DType::Float64)}, 1, "back"), DType::Float64);
  auto out = Executor(b.build()).run({{"x", Tensor::from_vector<float>({2, 2}, {0.5f, 3.f, -2.f, 1e20f})}});
  EXPECT_EQ(out.at("eq_out0").to_i64(), (std::vector<int64_t>{1, 0, 1, 1}));
  EXPECT_EQ(out.at("back_out0").to_f64(), (std::vector<double>{0.5, 3, -2, 1e20}));
}

// The proto form: string_data, any bytes (UTF-8, NUL); raw or external data and a wrong count are errors naming the
// tensor.
TEST(StringTensor, ProtoRoundTripAndErrors) {
  Tensor t = Tensor::from_strings({2}, {"h\xc3\xa9", std::string("a\0b", 3)});
  onnx::TensorProto p;
  tensor_to_proto(t, "s", &p);
  EXPECT_EQ(p.string_data_size(), 2);
  EXPECT_FALSE(p.has_raw_data());
  EXPECT_TRUE(tensor_from_proto(p, "s", "").bit_equal(t));
  onnx::TensorProto q = p;
  q.add_string_data("extra");
  EXPECT_NE(error_of([&] { tensor_from_proto(q, "initializer 's'", ""); }).find("initializer 's': has 3 strings"),
            std::string::npos);
  q = p;
  q.set_raw_data("ab");
  EXPECT_NE(error_of([&] { tensor_from_proto(q, "initializer 's'", ""); }).find("string_data"), std::string::npos);
}
