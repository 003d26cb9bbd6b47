// lowbit analyze on a zoo model with one deliberately hostile layer: the ResNet-style model where input channel 0 of
// one conv is multiplied by 1000 and the channel feeding it (through a ReLU) divided by 1000 - the same function, but
// a huge outlier column in one weight tensor that wrecks its 8-bit grid. The analysis must rank that weight first,
// and --target-drop 0.5 must give a config that meets 0.5 points by raising the fewest quantizers.
#include <gtest/gtest.h>

#include <cmath>

#include "analysis/analyze.h"
#include "data/loader.h"
#include "ir/onnx_io.h"
#include "ptq/cle.h"
#include "quant/fold_bn.h"
#include "quant/quantsim.h"
#include "test_util.h"

namespace lowbit {
namespace {

Tensor load_x(const std::string& spec, std::vector<int64_t>* labels) {
  data::LoaderOptions o;
  o.batch_size = 1000;
  data::DataLoader dl(spec, o);
  data::Batch b;
  EXPECT_TRUE(dl.next(b));
  if (labels) *labels = b.labels;
  return b.x;
}

int node_named(const Model& m, const std::string& name) {
  for (int i = 0; i < (int)m.graph.nodes.size(); ++i)
    if (m.graph.nodes[(size_t)i].name == name) return i;
  return -1;
}

quant::QuantSimPlan calibrated(const Model& m, const quant::QuantConfig& cfg, const Tensor& calib) {
  auto plan = quant::plan_quantizers(m, cfg);
  quant::compute_weight_encodings(m, plan);
  quant::calibrate(m, plan, testing::one_batch(calib));
  return plan;
}

// The zoo ResNet, prepared, with channel 0 between two convolutions of block 1 rescaled without changing the function:
// conv a's output channel 0 divided by `s0` (weights and bias; ReLU is positively homogeneous), conv b's input channel
// 0 multiplied by it. Returns the model and the index of conv b.
std::pair<Model, int> rescaled_resnet(float s0) {
  Model m = load_onnx(std::string(LOWBIT_SOURCE_DIR) + "/models/zoo/resnet.onnx");
  quant::prepare_for_quantization(m);
  int ai = node_named(m, "/blocks/blocks.1/c1/c1.0/Conv"), bi = node_named(m, "/blocks/blocks.1/c2/c2.0/Conv");
  check(ai >= 0 && bi >= 0, "the zoo ResNet lacks the block-1 convolutions");
  auto a = *ptq::linear_layer(m.graph, ai), b = *ptq::linear_layer(m.graph, bi);
  ptq::LayerArrays la{a.shape, ptq::get_weight(m.graph, a), ptq::get_bias(m.graph, a)};
  ptq::LayerArrays lb{b.shape, ptq::get_weight(m.graph, b), {}};
  std::vector<float> s((size_t)a.shape.out_channels, 1.f);
  s[0] = s0;
  ptq::scale_output_channels(la, s);
  ptq::scale_input_channels(lb, s);
  ptq::set_weight(m.graph, a, la.w);
  ptq::set_bias(m.graph, a, la.b);
  ptq::set_weight(m.graph, b, lb.w);
  return {m, bi};
}

TEST(AnalysisZoo, HostileLayerIsRankedFirstAndTargetDropConfigMeetsIt) {
  auto [m, bi] = rescaled_resnet(1000.f);  // a's channel 0 / 1000, b's input channel 0 * 1000
  const std::string b_name = m.graph.nodes[(size_t)bi].name;

  Tensor calib = load_x("fashion-mnist:train[0:500]", nullptr);
  analysis::EvalSet eval;
  eval.x = load_x("fashion-mnist:test[0:1000]", &eval.labels);
  quant::QuantConfig cfg = quant::default_config();  // W8A8, per-channel weights
  auto plan = calibrated(m, cfg, calib);
  analysis::AnalyzeOptions opt;
  opt.target_drop = 0.5;
  auto rep = analysis::analyze(m, m, plan, cfg, calib, eval, opt);
  std::printf("FP32 %.2f, quantized %.2f; first: %s (alone %.2f); fix raises %zu\n", rep.fp32, rep.quantized,
              rep.quantizers[0].q.label().c_str(), rep.quantizers[0].alone, rep.fix->overrides.size());
  EXPECT_GT(rep.fp32 - rep.quantized, 2.0) << "the hostile layer should hurt W8A8";
  ASSERT_TRUE(rep.quantizers[0].q.weight);
  EXPECT_EQ(rep.quantizers[0].q.node, b_name);
  // The fix: met, and no shorter prefix of the ranking meets it.
  ASSERT_TRUE(rep.fix && rep.fix->met);
  const auto& steps = rep.fix->steps;
  ASSERT_FALSE(steps.empty());
  EXPECT_LE(rep.fp32 - steps.back().metric, 0.5);
  for (size_t k = 0; k + 1 < steps.size(); ++k) EXPECT_GT(rep.fp32 - steps[k].metric, 0.5);
  EXPECT_EQ(rep.fix->overrides.size(), steps.size());
  EXPECT_EQ(rep.fix->overrides[0].node, b_name);
  // The written config, applied by the normal quantization path, meets the target too.
  quant::QuantConfig fixed = quant::parse_config(
      quant::config_to_json([&] {
        quant::QuantConfig c = cfg;
        c.overrides.insert(c.overrides.end(), rep.fix->overrides.begin(), rep.fix->overrides.end());
        return c;
      }()),
      "fixed config");
  auto plan2 = calibrated(m, fixed, calib);
  Model q = quant::build_quantized_model(m, plan2, quant::Mode::Static);
  Tensor y = Executor(q).run({{"image", eval.x}}).begin()->second;
  int64_t right = 0;
  for (int64_t i = 0; i < y.dim(0); ++i) {
    const float* p = y.data<float>() + i * y.dim(1);
    right += (std::max_element(p, p + y.dim(1)) - p) == eval.labels[(size_t)i];
  }
  double acc = 100.0 * (double)right / (double)y.dim(0);
  EXPECT_LE(rep.fp32 - acc, 0.5) << "the config reaches " << acc;
}

// Issue 12 item 10: a ResNet whose one activation channel is 100x larger than the others (function preserved:
// a's output channel 0 x 100, b's input channel 0 / 100). Per-tensor activation ranges fail on it, but only by a
// few images on 500 (top-1 drops of 0.0-0.2 points: ties), so ranking by accuracy put the logits first. Ranked by
// output SQNR, the activation with the large channel comes first. Ranking by `alone` accuracy again fails this.
TEST(AnalysisZoo, LargeActivationChannelIsRankedFirstByOutputFidelity) {
  auto [m, bi] = rescaled_resnet(0.01f);  // a's channel 0 x 100, b's input channel 0 / 100
  // The quantized activation that carries the large channel: b's input.
  std::string big = m.graph.nodes[(size_t)bi].inputs[0];

  Tensor calib = load_x("fashion-mnist:train[0:500]", nullptr);
  analysis::EvalSet eval;
  eval.x = load_x("fashion-mnist:test[0:500]", &eval.labels);
  quant::QuantConfig cfg = quant::default_config();
  auto plan = calibrated(m, cfg, calib);
  auto rep = analysis::analyze(m, m, plan, cfg, calib, eval, {});
  for (size_t i = 0; i < 4; ++i)
    std::printf("rank %zu: %s output SQNR alone %.2f dB, alone %.2f, SQNR %.2f\n", i + 1,
                rep.quantizers[i].q.label().c_str(), rep.quantizers[i].output_sqnr_alone_db, rep.quantizers[i].alone,
                rep.quantizers[i].sqnr_db);
  EXPECT_FALSE(rep.quantizers[0].q.weight);
  EXPECT_EQ(rep.quantizers[0].q.tensor, big);
  EXPECT_GT(rep.accuracy_noise_points, 0.0);
}

}  // namespace
}  // namespace lowbit
