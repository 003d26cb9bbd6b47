// CLE on a real network: a copy of the MobileNetV2-style zoo model whose per-channel weight ranges are made wildly
// unequal by a function-preserving rescaling. Per-tensor W8A8 collapses on it without CLE; CLE restores it.
// Evaluates on Fashion-MNIST (2,000 test images): label "slow", not run under the sanitizers.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "data/loader.h"
#include "ir/onnx_io.h"
#include "ptq/cle.h"
#include "ptq/bias_correction.h"
#include "ptq/layer.h"
#include "ptq/pipeline.h"
#include "quant/fold_bn.h"
#include "quant/quantsim.h"
#include "runtime/executor.h"
#include "test_util.h"

namespace lowbit {
namespace {

// Per test image: whether the model's top-1 prediction is right (first n test images).
std::vector<char> correct(const Model& m, int64_t n) {
  data::LoaderOptions o;
  o.batch_size = 500;
  data::DataLoader dl("fashion-mnist:test[0:" + std::to_string(n) + "]", o);
  Executor e(m);
  data::Batch b;
  std::vector<char> right;
  while (dl.next(b)) {
    Tensor y = e.run({{"image", b.x}}).begin()->second;
    for (int64_t i = 0; i < y.dim(0); ++i) {
      const float* r = y.data<float>() + i * y.dim(1);
      right.push_back(std::max_element(r, r + y.dim(1)) - r == b.labels[(size_t)i]);
    }
  }
  return right;
}

double accuracy(const Model& m, int64_t n) {
  auto r = correct(m, n);
  return 100.0 * (double)std::count(r.begin(), r.end(), 1) / (double)r.size();
}

double per_tensor_w8a8(const Model& m) {
  quant::QuantConfig cfg = quant::default_config();
  cfg.weights.spec.granularity = quant::Granularity::PerTensor;
  auto plan = quant::plan_quantizers(m, cfg);
  quant::compute_weight_encodings(m, plan);
  data::LoaderOptions o;
  o.num_samples = 500;
  data::DataLoader dl("fashion-mnist:train", o);
  data::Batch b;
  quant::calibrate(m, plan, [&](Tensor& x) {
    if (!dl.next(b)) return false;
    x = b.x;
    return true;
  });
  return accuracy(quant::build_quantized_model(m, plan, quant::Mode::Static), 2000);
}

int single_reader(const Graph& g, const std::string& v) {
  auto c = g.consumers(v);
  return c.size() == 1 && !g.is_graph_output(v) ? c[0] : -1;
}

TEST(CleFixture, UnequalMobileNetV2CollapsesPerTensorAndCleRestoresIt) {
  Model m = load_onnx(std::string(LOWBIT_SOURCE_DIR) + "/models/zoo/mobilenetv2.onnx");
  auto prep = quant::prepare_for_quantization(m);
  // ReLU6 -> ReLU first (what CLE does to equalize across it): ReLU is positively homogeneous, so the rescaling
  // below keeps the function exactly. The FP32 reference is this ReLU model.
  for (auto& n : m.graph.nodes)
    if (n.op_type == "Clip") {
      n.op_type = "Relu";
      n.inputs.resize(1);
    }
  Model fp32 = m;
  // Hostile rescaling: every Conv -> [Relu] -> Conv pair gets channel scales 10^U(-1.5, 1.5).
  std::mt19937 rng(42);
  std::uniform_real_distribution<float> e(-1.5f, 1.5f);
  int pairs = 0;
  for (int i = 0; i < (int)m.graph.nodes.size(); ++i) {
    auto a = ptq::linear_layer(m.graph, i);
    if (!a || a->kind != ptq::LayerKind::Conv) continue;
    int next = single_reader(m.graph, a->output);
    if (next >= 0 && m.graph.nodes[(size_t)next].op_type == "Relu") next = single_reader(m.graph, m.graph.nodes[(size_t)next].outputs[0]);
    if (next < 0) continue;
    auto b = ptq::linear_layer(m.graph, next);
    if (!b || b->kind != ptq::LayerKind::Conv || b->shape.in_channels != a->shape.out_channels) continue;
    ptq::LayerArrays la{a->shape, ptq::get_weight(m.graph, *a), ptq::get_bias(m.graph, *a)};
    ptq::LayerArrays lb{b->shape, ptq::get_weight(m.graph, *b), ptq::get_bias(m.graph, *b)};
    std::vector<float> s((size_t)a->shape.out_channels);
    for (auto& v : s) v = std::pow(10.f, e(rng));
    ptq::scale_output_channels(la, s);
    ptq::scale_input_channels(lb, s);
    ptq::set_weight(m.graph, *a, la.w);
    ptq::set_bias(m.graph, *a, la.b);
    ptq::set_weight(m.graph, *b, lb.w);
    ++pairs;
  }
  ASSERT_GE(pairs, 15);
  // The fixture computes the same function (FP32 outputs equal up to float rounding).
  {
    data::LoaderOptions o;
    o.batch_size = 64;
    data::DataLoader dl("fashion-mnist:test[0:64]", o);
    data::Batch b;
    dl.next(b);
    Tensor y0 = Executor(fp32).run({{"image", b.x}}).begin()->second, y1 = Executor(m).run({{"image", b.x}}).begin()->second;
    double peak = 0, err = 0;
    for (int64_t i = 0; i < y0.numel(); ++i) {
      peak = std::max(peak, (double)std::fabs(y0.data<float>()[i]));
      err = std::max(err, (double)std::fabs(y0.data<float>()[i] - y1.data<float>()[i]));
    }
    EXPECT_LT(err / peak, 1e-4);
  }
  double acc_fp = accuracy(fp32, 2000);
  double acc_skewed = per_tensor_w8a8(m);
  std::map<std::string, quant::BnParams> bn;
  Model eq = m;
  auto rep = ptq::equalize_model(eq, bn);
  double acc_cle = per_tensor_w8a8(eq);
  std::printf("fixture: FP32 %.2f%%, per-tensor W8A8 %.2f%% without CLE, %.2f%% with CLE (%d pairs)\n", acc_fp,
              acc_skewed, acc_cle, rep.pairs);
  EXPECT_LT(acc_skewed, acc_fp - 10) << "the fixture should make per-tensor quantization collapse";
  EXPECT_GE(acc_cle, acc_fp - 1.0);
}

// Issue 12 item 2: AdaRound followed by empirical bias correction used to compare the AdaRounded weights with
// themselves ("mean |bias shift| 0", biases untouched). Passing no FP32 reference to the bias correction after
// AdaRound (the old behaviour) fails the "biases changed" assertions. Accuracy is measured on held-out test images
// (not the calibration samples); "not lower" allows two standard errors of the paired difference (McNemar: the
// images on which exactly one of the two models is right), not a constant. Measured with 200 AdaRound iterations
// (W4A8 per-channel, 2,000 test images): inception 94.15% -> 94.15%; on resnet and mobilenetv2 the combination
// loses 1.7 and 2.7 points, because bias correction moves pre-activation means that AdaRound's post-activation
// objective leaves alone on purpose (the pipeline warns when both are asked for).
TEST(AdaRoundThenBiasCorrection, ChangesTheBiasesAndKeepsAccuracy) {
  Model m = load_onnx(std::string(LOWBIT_SOURCE_DIR) + "/models/zoo/inception.onnx");
  quant::prepare_for_quantization(m);
  quant::QuantConfig cfg = quant::default_config();
  cfg.weights.spec.grid.bits = 4;
  auto plan = quant::plan_quantizers(m, cfg);
  quant::compute_weight_encodings(m, plan);
  data::LoaderOptions o;
  o.num_samples = 256;
  data::DataLoader dl("fashion-mnist:train", o);
  Tensor samples = data::read_all(dl).x;
  auto quantized = [&](bool bias_correction, std::vector<ptq::StepLog>* logs) {
    Model q = m;
    quant::PipelineConfig p;
    p.adaround = true;
    p.adaround_iterations = 200;
    p.bias_correction = bias_correction ? quant::BiasCorrectionKind::Empirical : quant::BiasCorrectionKind::None;
    *logs = ptq::run_weight_steps(q, plan, p, {}, samples);
    quant::QuantSimPlan qp = plan;
    quant::calibrate(q, qp, testing::one_batch(samples));
    return std::make_pair(q, quant::build_quantized_model(q, qp, quant::Mode::Static));
  };
  std::vector<ptq::StepLog> logs_a, logs_b;
  auto [ar_fp, ar] = quantized(false, &logs_a);
  auto [bc_fp, bc] = quantized(true, &logs_b);
  ASSERT_EQ(logs_b.size(), 2u);
  std::printf("AdaRound + BC: %s\n", logs_b[1].lines.at(0).c_str());
  EXPECT_FALSE(logs_b[1].lines.at(0).ends_with("mean |bias shift| 0")) << logs_b[1].lines.at(0);
  // The biases after AdaRound + BC differ from those after AdaRound alone.
  double changed = 0;
  for (auto& [l, wq] : ptq::planned_layers(ar_fp.graph, plan)) {
    auto b0 = ptq::get_bias(ar_fp.graph, l), b1 = ptq::get_bias(bc_fp.graph, l);
    ASSERT_EQ(b0.size(), b1.size());
    for (size_t i = 0; i < b0.size(); ++i) changed = std::max(changed, (double)std::fabs(b0[i] - b1[i]));
  }
  EXPECT_GT(changed, 0.0);
  auto ra = correct(ar, 2000), rb = correct(bc, 2000);
  double n = (double)ra.size(), acc_a = 0, acc_b = 0, discordant = 0;
  for (size_t i = 0; i < ra.size(); ++i) acc_a += ra[i], acc_b += rb[i], discordant += ra[i] != rb[i];
  acc_a *= 100 / n, acc_b *= 100 / n;
  double two_se = 2 * 100 * std::sqrt(discordant) / n;
  std::printf("W4A8 per-channel inception: AdaRound %.2f%%, AdaRound + empirical BC %.2f%% (2 SE of the difference %.2f)\n",
              acc_a, acc_b, two_se);
  EXPECT_GE(acc_b, acc_a - two_se);
}

}  // namespace
}  // namespace lowbit
