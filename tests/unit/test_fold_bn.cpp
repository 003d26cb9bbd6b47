// Batch-norm folding: the pure function on hand-computed values, and the graph pass preserving the function.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <set>

#include "ir/onnx_io.h"
#include "quant/fold_bn.h"
#include "quant/quantsim.h"
#include "runtime/executor.h"
#include "test_util.h"

using namespace lowbit;
using namespace lowbit::testing;

TEST(FoldBn, HandComputed) {
  // Two output channels, two weights each.
  float w[4] = {1, 2, 3, 4}, b[2] = {0.5f, -1};
  float gamma[2] = {2, 1}, beta[2] = {1, 0}, mean[2] = {0.5f, 1}, var[2] = {3, 0};
  quant::fold_bn(w, b, 1, 2, 2, gamma, beta, mean, var, 1.f);  // sigma = 2 and 1
  EXPECT_FLOAT_EQ(w[0], 1.f);  // *2/2
  EXPECT_FLOAT_EQ(w[1], 2.f);
  EXPECT_FLOAT_EQ(w[2], 3.f);  // *1/1
  EXPECT_FLOAT_EQ(b[0], 1.f);  // 1 + (0.5 - 0.5) * 1
  EXPECT_FLOAT_EQ(b[1], -2.f); // 0 + (-1 - 1) * 1
}

namespace {
Model conv_bn_model(bool bias, bool output_is_bn) {
  GraphBuilder gb(13);
  gb.input("x", DType::Float32, {-1, 3, 6, 6});
  gb.initializer("w", random_tensor({4, 3, 3, 3}, 1));
  std::vector<std::string> in = {"x", "w"};
  if (bias) in.push_back(gb.initializer("b", random_tensor({4}, 2)));
  auto c = gb.node("Conv", in, {attr_ints("pads", {1, 1, 1, 1})}, 1, "conv");
  gb.initializer("g", random_tensor({4}, 3, 0.5f, 2.f));
  gb.initializer("be", random_tensor({4}, 4));
  gb.initializer("mu", random_tensor({4}, 5));
  gb.initializer("var", random_tensor({4}, 6, 0.1f, 3.f));
  auto y = gb.node("BatchNormalization", {c, "g", "be", "mu", "var"}, {attr_float("epsilon", 1e-3f)}, 1, "bn");
  if (!output_is_bn) y = gb.node("Relu", {y}, {}, 1, "relu");
  gb.output(y);
  return gb.build();
}
}  // namespace

TEST(FoldBatchNorms, PreservesTheFunctionAndOutputNames) {
  for (bool bias : {false, true})
    for (bool last : {false, true}) {
      Model m = conv_bn_model(bias, last);
      Tensor x = random_tensor({2, 3, 6, 6}, 9);
      std::string out = m.graph.outputs[0].name;
      Tensor before = Executor(m).run({{"x", x}}).at(out);
      EXPECT_EQ(quant::fold_batch_norms(m), 1);
      for (auto& n : m.graph.nodes) EXPECT_NE(n.op_type, "BatchNormalization");
      EXPECT_EQ(m.graph.outputs[0].name, out);
      EXPECT_FALSE(m.graph.is_initializer("g"));  // BN parameters are gone
      Tensor after = Executor(m).run({{"x", x}}).at(out);
      auto a = before.to_f64(), b = after.to_f64();
      for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-5 * (1 + std::abs(a[i])));
    }
}

TEST(FoldBatchNorms, LeavesSharedConvOutputsAlone) {
  Model m = conv_bn_model(true, false);
  m.graph.outputs.push_back(ValueInfo{"conv_out0", DType::Float32, false, {}, ""});  // conv output also read elsewhere
  EXPECT_EQ(quant::fold_batch_norms(m), 0);
}

TEST(FoldBatchNorms, ZooModelsKeepTheirAccuracyFunction) {
  for (const char* name : {"resnet", "mobilenetv2", "inception"}) {
    std::string path = std::string(LOWBIT_SOURCE_DIR) + "/models/zoo/" + name + ".onnx";
    if (!std::filesystem::exists(path)) continue;
    Model m = load_onnx(path);
    Tensor x = random_tensor({4, 1, 28, 28}, 11, 0.f, 1.f);
    Tensor before = Executor(m).run({{"image", x}}).at("logits");
    int folded = quant::fold_batch_norms(m);
    EXPECT_GT(folded, 0) << name;
    Tensor after = Executor(m).run({{"image", x}}).at("logits");
    auto a = before.to_f64(), b = after.to_f64();
    for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-4 * (1 + std::abs(a[i]))) << name;
  }
}

TEST(PrepareForQuantization, NamesEveryNodeUniquely) {
  Model m = small_cnn();
  m.graph.nodes[0].name = "";
  m.graph.nodes[1].name = "same";
  m.graph.nodes[2].name = "same";
  EXPECT_THROW(quant::plan_quantizers(m, quant::default_config()), Error);
  quant::prepare_for_quantization(m);
  std::set<std::string> names;
  for (auto& n : m.graph.nodes) {
    EXPECT_FALSE(n.name.empty());
    EXPECT_TRUE(names.insert(n.name).second) << n.name;
  }
  EXPECT_NO_THROW(quant::plan_quantizers(m, quant::default_config()));
}
