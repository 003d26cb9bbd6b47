// Shared helpers for unit tests: deterministic random tensors and small model fixtures.
#pragma once
#include <unistd.h>

#include <filesystem>
#include <functional>
#include <random>
#include <string>

#include "core/tensor.h"
#include "ir/builder.h"

namespace lowbit::testing {

inline Tensor random_tensor(const Shape& s, uint32_t seed, float lo = -1.f, float hi = 1.f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  Tensor t(DType::Float32, s);
  for (auto& v : std::span<float>(t.data<float>(), (size_t)t.numel())) v = d(rng);
  return t;
}

// A batch source for quant::calibrate that yields `t` once and then reports the end of the data.
inline std::function<bool(Tensor&)> one_batch(Tensor t) {
  return [t = std::move(t), given = false](Tensor& x) mutable {
    if (given) return false;
    x = t;
    return given = true;
  };
}

// x[N,3,8,8] -> Conv(4) -> Relu -> GlobalAveragePool -> Flatten -> Gemm(2) -> y
inline Model small_cnn(uint32_t seed = 1) {
  GraphBuilder b(13);
  b.input("x", DType::Float32, {-1, 3, 8, 8});
  b.initializer("w", random_tensor({4, 3, 3, 3}, seed));
  b.initializer("b", random_tensor({4}, seed + 1));
  b.initializer("fw", random_tensor({2, 4}, seed + 2));
  b.initializer("fb", random_tensor({2}, seed + 3));
  auto c = b.node("Conv", {"x", "w", "b"}, {attr_ints("pads", {1, 1, 1, 1})}, 1, "conv");
  auto r = b.node("Relu", {c}, {}, 1, "relu");
  auto p = b.node("GlobalAveragePool", {r}, {}, 1, "gap");
  auto f = b.node("Flatten", {p}, {}, 1, "flatten");
  auto y = b.node("Gemm", {f, "fw", "fb"}, {attr_int("transB", 1)}, 1, "fc");
  b.output(y);
  return b.build();
}

// The message of the lowbit::Error that f throws, or "" when it throws none.
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// A fresh empty folder under the system temp dir.
inline std::filesystem::path temp_dir(const std::string& tag) {
  auto p = std::filesystem::temp_directory_path() / ("lowbit_test_" + tag + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(p);
  std::filesystem::create_directories(p);
  return p;
}

}  // namespace lowbit::testing
