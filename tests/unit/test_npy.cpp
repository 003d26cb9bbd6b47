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
