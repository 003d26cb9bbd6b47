// CLE on a real network: a copy of the MobileNetV2-style zoo model whose per-channel weight ranges are made wildly
// unequal by a function-preserving rescaling. Per-tensor W8A8 collapses on it without CLE; CLE restores it.
// Evaluates on Fashion-MNIST (2,000 test images): label "slow", not run under the sanitizers.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "data/loader.h"
#include "ir/onnx_io.h"
#include "ptq/cle.h"
#include "quant/fold_bn.h"
#include "quant/quantsim.h"
#include "runtime/executor.h"

namespace lowbit {
namespace {

double accuracy(const Model& m, int64_t n) {
  data::LoaderOptions o;
  o.batch_size = 500;
  data::DataLoader dl("fashion-mnist:test[0:" + std::to_string(n) + "]", o);
  Executor e(m);
  data::Batch b;
  int64_t right = 0, total = 0;
  while (dl.next(b)) {
    Tensor y = e.run({{"image", b.x}}).begin()->second;
    for (int64_t i = 0; i < y.dim(0); ++i) {
      const float* r = y.data<float>() + i * y.dim(1);
      right += std::max_element(r, r + y.dim(1)) - r == b.labels[(size_t)i];
    }
    total += y.dim(0);
  }
  return 100.0 * (double)right / (double)total;
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

}  // namespace
}  // namespace lowbit
