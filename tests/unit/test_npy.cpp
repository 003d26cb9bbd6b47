// NumPy .npy/.npz reading and writing, including a file written by NumPy itself (np.savez_compressed).
#include <gtest/gtest.h>

#include <filesystem>

#include "io/npy.h"
#include "test_util.h"

using namespace lowbit;
using namespace lowbit::testing;

TEST(Npy, RoundTripsEveryDtype) {
  auto dir = temp_dir("npy");
  std::map<std::string, Tensor> arrays = {
      {"f", random_tensor({2, 3}, 1)},
      {"i8", Tensor::from_vector<int8_t>({3}, {-1, 0, 1})},
      {"u8", Tensor::from_vector<uint8_t>({2, 1}, {0, 255})},
      {"i64", Tensor::from_vector<int64_t>({}, {42})},
      {"b", Tensor::from_vector<bool>({2}, {true, false})},
      {"empty", Tensor(DType::Float32, {0, 4})}};
  for (auto& [k, t] : arrays) {
    auto p = (dir / (k + ".npy")).string();
    save_npy(p, t);
    EXPECT_TRUE(load_npy(p).bit_equal(t)) << k;
  }
  save_npz((dir / "all.npz").string(), arrays);
  auto back = load_npz((dir / "all.npz").string());
  ASSERT_EQ(back.size(), arrays.size());
  for (auto& [k, t] : arrays) EXPECT_TRUE(back.at(k).bit_equal(t)) << k;
}

TEST(Npy, ReadsNumpyCompressedNpz) {
  auto p = std::filesystem::path(LOWBIT_TEST_DATA) / "numpy_compressed.npz";
  auto a = load_npz(p.string());
  ASSERT_EQ(a.count("x"), 1u);
  EXPECT_EQ(a.at("x").shape(), (Shape{2, 3}));
  EXPECT_EQ(a.at("x").to_f64(), (std::vector<double>{0, 1, 2, 3, 4, 5}));
  EXPECT_EQ(a.at("labels").dtype(), DType::Int64);
  EXPECT_EQ(a.at("labels").to_i64(), (std::vector<int64_t>{7, 9}));
}

TEST(Npy, BadFilesGiveErrors) {
  auto dir = temp_dir("npybad");
  EXPECT_THROW(load_npy((dir / "missing.npy").string()), Error);
  EXPECT_THROW(parse_npy("not numpy", "x.npy"), Error);
  std::string good = encode_npy(random_tensor({4}, 1));
  EXPECT_THROW(parse_npy(good.substr(0, good.size() - 3), "t.npy"), Error);
  std::string fortran = good;
  auto pos = fortran.find("False");
  fortran.replace(pos, 5, "True ");
  EXPECT_THROW(parse_npy(fortran, "f.npy"), Error);
}

namespace {
// A version-1 .npy file as NumPy lays it out, with the given header fields and raw data.
std::string npy_bytes(const std::string& descr, const std::string& shape, const std::string& data) {
  std::string h = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': " + shape + ", }";
  while ((10 + h.size() + 1) % 64) h += ' ';
  h += '\n';
  std::string out = "\x93NUMPY\x01";
  out += '\0';
  out += (char)(h.size() & 255);
  out += (char)(h.size() >> 8);
  return out + h + data;
}
std::string utf32(std::initializer_list<uint32_t> cps) {
  std::string s;
  for (uint32_t c : cps) s.append(reinterpret_cast<const char*>(&c), 4);
  return s;
}
}  // namespace

// NumPy's fixed-width strings: 'U' (UTF-32, read into UTF-8) and 'S' (bytes), trailing NULs dropped as np.load does.
// Mutations caught: 'U' read as bytes (NULs inside), padding kept, code points above 0x7F written as one byte.
TEST(Npy, ReadsFixedWidthStrings) {
  Tensor u = parse_npy(npy_bytes("<U2", "(3,)", utf32({0xE9, 0, 'a', 'b', 0x1F600, 0})), "u.npy");
  EXPECT_EQ(u.strings(), (std::vector<std::string>{"\xc3\xa9", "ab", "\xf0\x9f\x98\x80"}));
  Tensor s = parse_npy(npy_bytes("|S3", "(2, 1)", std::string("ab\0xyz", 6)), "s.npy");
  EXPECT_EQ(s.shape(), (Shape{2, 1}));
  EXPECT_EQ(s.strings(), (std::vector<std::string>{"ab", "xyz"}));
  EXPECT_NE(error_of([] { parse_npy(npy_bytes("|O", "(1,)", "xxxxxxxx"), "o.npy"); }).find("object arrays"),
            std::string::npos);
  EXPECT_NE(error_of([] { parse_npy(npy_bytes("<U1", "(1,)", utf32({0xD800})), "bad.npy"); }).find("code point"),
            std::string::npos);
  EXPECT_THROW(parse_npy(npy_bytes("<U2", "(2,)", utf32({'a', 'b', 'c'})), "short.npy"), Error);  // 12 of 16 bytes
}

// Written as 'U' when every string is UTF-8 (np.load gives str), as 'S' otherwise; both read back the same strings.
// A string ending in NUL cannot survive NumPy and is an error, not a silently shortened value.
TEST(Npy, WritesStringsReadBackExactly) {
  Tensor utf8 = Tensor::from_strings({2, 2}, {"", "caf\xc3\xa9", "x", "\xf0\x9f\x98\x80z"});
  std::string b = encode_npy(utf8);
  EXPECT_NE(b.find("'descr': '<U4'"), std::string::npos);
  EXPECT_TRUE(parse_npy(b, "w.npy").bit_equal(utf8));
  Tensor bytes = Tensor::from_strings({2}, {"\xff\xfe", std::string("a\0b", 3)});
  b = encode_npy(bytes);
  EXPECT_NE(b.find("'descr': '|S3'"), std::string::npos);
  EXPECT_TRUE(parse_npy(b, "w.npy").bit_equal(bytes));
  EXPECT_NE(error_of([] { encode_npy(Tensor::from_strings({1}, {std::string("a\0", 2)})); }).find("NUL"),
            std::string::npos);
}
