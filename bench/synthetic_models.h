// ResNet-18-style and MobileNetV2-style networks (224x224x3 input, 1000 classes) built with GraphBuilder and
// random weights, BatchNorm kept unfolded as exporters emit it. For speed measurements, not accuracy.
#pragma once
#include <cmath>
#include <random>
#include <string>

#include "ir/builder.h"

namespace lowbit::bench {

class NetBuilder {
 public:
  explicit NetBuilder(uint32_t seed) : b_(13), rng_(seed) {}

  Tensor random(const Shape& s, float scale) {
    std::normal_distribution<float> d(0.f, scale);
    Tensor t(DType::Float32, s);
    for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = d(rng_);
    return t;
  }
  Tensor constant(const Shape& s, float v) {
    Tensor t(DType::Float32, s);
    for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = v;
    return t;
  }
  std::string conv_bn(const std::string& x, int64_t cin, int64_t cout, int64_t k, int64_t stride, int64_t group = 1) {
    std::string n = "l" + std::to_string(layer_++);
    float fan_in = (float)(cin / group * k * k);
    auto w = b_.initializer(n + ".w", random({cout, cin / group, k, k}, std::sqrt(2.f / fan_in)));
    auto c = b_.node("Conv", {x, w},
                     {attr_ints("kernel_shape", {k, k}), attr_ints("strides", {stride, stride}),
                      attr_ints("pads", {k / 2, k / 2, k / 2, k / 2}), attr_int("group", group)});
    auto g = b_.initializer(n + ".gamma", constant({cout}, 1.f));
    auto be = b_.initializer(n + ".beta", constant({cout}, 0.f));
    auto mu = b_.initializer(n + ".mean", constant({cout}, 0.f));
    auto var = b_.initializer(n + ".var", constant({cout}, 1.f));
    return b_.node("BatchNormalization", {c, g, be, mu, var});
  }
  std::string relu(const std::string& x) { return b_.node("Relu", {x}); }
  std::string relu6(const std::string& x) {
    if (!b_.model().graph.is_initializer("zero")) {
      b_.initializer("zero", Tensor::scalar<float>(0.f));
      b_.initializer("six", Tensor::scalar<float>(6.f));
    }
    return b_.node("Clip", {x, "zero", "six"});
  }
  std::string add(const std::string& a, const std::string& c) { return b_.node("Add", {a, c}); }
  std::string head(const std::string& x, int64_t cin, int64_t classes) {
    auto p = b_.node("GlobalAveragePool", {x});
    auto f = b_.node("Flatten", {p});
    auto w = b_.initializer("fc.w", random({classes, cin}, std::sqrt(1.f / (float)cin)));
    auto bias = b_.initializer("fc.b", constant({classes}, 0.f));
    return b_.node("Gemm", {f, w, bias}, {attr_int("transB", 1)});
  }
  GraphBuilder& builder() { return b_; }

 private:
  GraphBuilder b_;
  std::mt19937 rng_;
  int layer_ = 0;
};

inline Model resnet18(uint32_t seed = 1) {
  NetBuilder n(seed);
  auto& b = n.builder();
  std::string x = b.input("input", DType::Float32, {-1, 3, 224, 224});
  x = n.relu(n.conv_bn(x, 3, 64, 7, 2));
  x = b.node("MaxPool", {x}, {attr_ints("kernel_shape", {3, 3}), attr_ints("strides", {2, 2}), attr_ints("pads", {1, 1, 1, 1})});
  int64_t cin = 64;
  for (int64_t stage = 0; stage < 4; ++stage) {
    int64_t cout = 64 << stage;
    for (int blk = 0; blk < 2; ++blk) {
      int64_t stride = (stage > 0 && blk == 0) ? 2 : 1;
      auto y = n.relu(n.conv_bn(x, cin, cout, 3, stride));
      y = n.conv_bn(y, cout, cout, 3, 1);
      auto shortcut = (stride != 1 || cin != cout) ? n.conv_bn(x, cin, cout, 1, stride) : x;
      x = n.relu(n.add(y, shortcut));
      cin = cout;
    }
  }
  b.output(n.head(x, 512, 1000));
  return b.build();
}

inline Model mobilenetv2(uint32_t seed = 2) {
  NetBuilder n(seed);
  auto& b = n.builder();
  std::string x = b.input("input", DType::Float32, {-1, 3, 224, 224});
  x = n.relu6(n.conv_bn(x, 3, 32, 3, 2));
  int64_t cin = 32;
  const int64_t settings[][4] = {{1, 16, 1, 1}, {6, 24, 2, 2}, {6, 32, 3, 2}, {6, 64, 4, 2},
                                 {6, 96, 3, 1}, {6, 160, 3, 2}, {6, 320, 1, 1}};
  for (auto& s : settings) {
    for (int64_t i = 0; i < s[2]; ++i) {
      int64_t stride = i == 0 ? s[3] : 1, hidden = cin * s[0], cout = s[1];
      auto y = x;
      if (s[0] != 1) y = n.relu6(n.conv_bn(y, cin, hidden, 1, 1));
      y = n.relu6(n.conv_bn(y, hidden, hidden, 3, stride, hidden));
      y = n.conv_bn(y, hidden, cout, 1, 1);
      x = (stride == 1 && cin == cout) ? n.add(x, y) : y;
      cin = cout;
    }
  }
  x = n.relu6(n.conv_bn(x, cin, 1280, 1, 1));
  b.output(n.head(x, 1280, 1000));
  return b.build();
}

}  // namespace lowbit::bench
