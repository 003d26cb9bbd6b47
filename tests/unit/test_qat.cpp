// Quantization-aware training (train/): the tape on a whole graph against finite differences, the QAT graph against
// the QDQ export (before and after training, bit for bit), training that lowers the loss, deterministic resume,
// the optimizers and losses against their formulas, and the errors for what QAT does not cover.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "ir/onnx_io.h"
#include "quant/fold_bn.h"
#include "quant/quantsim.h"
#include "runtime/executor.h"
#include "test_util.h"
#include "train/qat.h"
#include "train/tape.h"

namespace lowbit {
namespace {

using namespace lowbit::quant;
using testing::random_tensor;

Model typed(const Model& m) { return parse_onnx(serialize_onnx(m), "test", "."); }

// x[N,2,6,6] -> Conv(4) -> Relu -> (fan-out) Conv(4) + residual Add -> MaxPool -> GAP -> Flatten -> Gemm(5) -> y
Model residual_cnn(uint32_t seed = 1) {
  GraphBuilder b(13);
  b.input("x", DType::Float32, {-1, 2, 6, 6});
  b.initializer("w1", random_tensor({4, 2, 3, 3}, seed, -0.5f, 0.5f));
  b.initializer("b1", random_tensor({4}, seed + 1, -0.1f, 0.1f));
  b.initializer("w2", random_tensor({4, 4, 3, 3}, seed + 2, -0.3f, 0.3f));
  b.initializer("fw", random_tensor({5, 4}, seed + 3));
  b.initializer("fb", random_tensor({5}, seed + 4));
  auto c1 = b.node("Conv", {"x", "w1", "b1"}, {attr_ints("pads", {1, 1, 1, 1})}, 1, "conv1");
  auto r1 = b.node("Relu", {c1}, {}, 1, "relu1");
  auto c2 = b.node("Conv", {r1, "w2"}, {attr_ints("pads", {1, 1, 1, 1})}, 1, "conv2");
  auto add = b.node("Add", {c2, r1}, {}, 1, "add");
  auto mp = b.node("MaxPool", {add}, {attr_ints("kernel_shape", {2, 2}), attr_ints("strides", {2, 2})}, 1, "pool");
  auto gap = b.node("GlobalAveragePool", {mp}, {}, 1, "gap");
  auto f = b.node("Flatten", {gap}, {}, 1, "flatten");
  auto y = b.node("Gemm", {f, "fw", "fb"}, {attr_int("transB", 1)}, 1, "fc");
  b.output(y);
  return typed(b.build());
}

// x[N,2,6,6] -> Conv(4) -> BN -> Relu -> Conv(3, bias) -> BN -> GAP -> Flatten -> Gemm(4) -> BN-free logits
Model bn_cnn(uint32_t seed = 1) {
  GraphBuilder b(13);
  b.input("x", DType::Float32, {-1, 2, 6, 6});
  b.initializer("w1", random_tensor({4, 2, 3, 3}, seed, -0.5f, 0.5f));
  b.initializer("w2", random_tensor({3, 4, 3, 3}, seed + 1, -0.3f, 0.3f));
  b.initializer("b2", random_tensor({3}, seed + 2, -0.1f, 0.1f));
  b.initializer("fw", random_tensor({4, 3}, seed + 3));
  for (int k : {1, 2}) {
    int64_t c = k == 1 ? 4 : 3;
    std::string s = std::to_string(k);
    b.initializer("g" + s, random_tensor({c}, seed + 10 * k, 0.5f, 1.5f));
    b.initializer("be" + s, random_tensor({c}, seed + 10 * k + 1, -0.2f, 0.2f));
    b.initializer("m" + s, random_tensor({c}, seed + 10 * k + 2, -0.2f, 0.2f));
    b.initializer("v" + s, random_tensor({c}, seed + 10 * k + 3, 0.5f, 2.f));
  }
  auto c1 = b.node("Conv", {"x", "w1"}, {attr_ints("pads", {1, 1, 1, 1})}, 1, "conv1");
  auto n1 = b.node("BatchNormalization", {c1, "g1", "be1", "m1", "v1"}, {}, 1, "bn1");
  auto r1 = b.node("Relu", {n1}, {}, 1, "relu1");
  auto c2 = b.node("Conv", {r1, "w2", "b2"}, {attr_ints("pads", {1, 1, 1, 1})}, 1, "conv2");
  auto n2 = b.node("BatchNormalization", {c2, "g2", "be2", "m2", "v2"}, {}, 1, "bn2");
  auto gap = b.node("GlobalAveragePool", {n2}, {}, 1, "gap");
  auto f = b.node("Flatten", {gap}, {}, 1, "flatten");
  auto y = b.node("Gemm", {f, "fw"}, {attr_int("transB", 1)}, 1, "fc");
  b.output(y);
  return typed(b.build());
}

// Labels the FP32 model itself gives: a task the model can solve exactly, which quantization then disturbs.
std::vector<int64_t> teacher_labels(const Model& m, const Tensor& x) {
  Executor ex(m);
  Tensor y = ex.run({{"x", x}}).begin()->second;
  std::vector<int64_t> l;
  for (int64_t n = 0; n < y.dim(0); ++n) {
    const float* r = y.data<float>() + n * y.dim(1);
    l.push_back(std::max_element(r, r + y.dim(1)) - r);
  }
  return l;
}

struct Prepared {
  Model m;
  QuantSimPlan plan;
  std::map<std::string, BnParams> batch_norms;
};
Prepared prepare(const Model& model, const QuantConfig& cfg, const Tensor& calib) {
  Prepared p{model, {}, {}};
  p.batch_norms = prepare_for_quantization(p.m).batch_norms;
  p.plan = plan_quantizers(p.m, cfg);
  compute_weight_encodings(p.m, p.plan);
  bool given = false;
  calibrate(p.m, p.plan, BatchSource([&](Tensor& x) {
              if (given) return false;
              x = calib;
              return given = true;
            }));
  return p;
}

QuantConfig bits(int w, int a, bool per_channel = true, bool symmetric_acts = false) {
  QuantConfig c = default_config();
  c.weights.spec.grid.bits = w;
  c.activations.spec.grid.bits = a;
  c.weights.spec.granularity = per_channel ? Granularity::PerChannel : Granularity::PerTensor;
  c.activations.spec.symmetric = symmetric_acts;
  return c;
}

Tensor run_first(const Model& m, const Tensor& x) { return Executor(m).run({{"x", x}}).begin()->second; }

// Rows of two [N, C] outputs with the same arg-max.
int argmax_agreement(const Tensor& a, const Tensor& b) {
  int agree = 0;
  int64_t C = a.dim(1);
  for (int64_t n = 0; n < a.dim(0); ++n) {
    const float *ra = a.data<float>() + n * C, *rb = b.data<float>() + n * C;
    agree += std::max_element(ra, ra + C) - ra == std::max_element(rb, rb + C) - rb;
  }
  return agree;
}

// The gradient the tape gives for a whole graph (fan-out, residual Add, MaxPool, Gemm) against finite differences
// of the cross-entropy loss: catches plumbing the per-op tester cannot (accumulation over readers, renamed values).
TEST(Tape, WholeGraphGradientsMatchFiniteDifferences) {
  Model m = residual_cnn(3);
  Tensor x = random_tensor({3, 2, 6, 6}, 7);
  std::vector<int64_t> y = {0, 3, 1};
  train::Tape tape(m);
  auto loss_at = [&](const std::string& name, int64_t j, float v) {
    train::Tape t2(m);
    Tensor p = t2.param(name).clone();
    p.data<float>()[j] = v;
    t2.param(name) = p;
    t2.forward({{"x", x}});
    return train::cross_entropy(t2.value("fc_out0"), y).loss;
  };
  tape.forward({{"x", x}});
  auto ce = train::cross_entropy(tape.value("fc_out0"), y);
  auto g = tape.backward({{"fc_out0", ce.grad}}, {"w1", "b1", "w2", "fw"});
  for (const char* name : {"w1", "b1", "w2", "fw"}) {
    const Tensor& p = m.graph.initializers.at(name);
    for (int64_t j = 0; j < p.numel(); j += std::max<int64_t>(1, p.numel() / 7)) {
      float x0 = p.data<float>()[j];
      auto D = [&](float h) { return (loss_at(name, j, x0 + h) - loss_at(name, j, x0 - h)) / (2.0 * h); };
      float h = 1.f / 1024;
      double fd = (4 * D(h / 2) - D(h)) / 3;  // Richardson: truncation O(h^4)
      double an = g.at(name).data<float>()[j];
      // Rounding: the loss is exact to ~eps32 * sum|dL/dz||z| ~ 1e-7, amplified 2/h (with extrapolation): ~3e-4.
      // A Relu or MaxPool kink within h of a value would show as a mismatch on one element; with this seed none does.
      EXPECT_NEAR(an, fd, 5e-3 * std::fabs(an) + 5e-4) << name << "[" << j << "]";
    }
  }
}

// The QAT graph (FakeQuant) and the QDQ export compute the same numbers: for 8-, 4- and 2-bit grids, per-tensor and
// per-channel weights, symmetric and asymmetric activations. Mutations caught: FakeQuant rounding with std::round,
// a clamp to the container rather than the grid, the zero point added after clamping, a per-channel axis ignored.
TEST(QatGraph, MatchesTheQdqExportBitForBit) {
  Model m = residual_cnn();
  Tensor calib = random_tensor({8, 2, 6, 6}, 21), probe = random_tensor({5, 2, 6, 6}, 22, -1.5f, 1.5f);
  for (int b : {8, 4, 2})
    for (bool pc : {true, false})
      for (bool sym : {true, false}) {
        SCOPED_TRACE("bits " + std::to_string(b) + (pc ? " per-channel" : " per-tensor") + (sym ? " symmetric" : " asymmetric"));
        Prepared p = prepare(m, bits(b, b, pc, sym), calib);
        auto g = train::build_qat_graph(p.m, p.plan, train::QatMethod::Lsq, calib);
        Tensor a = run_first(g.model, probe);
        Tensor q = run_first(build_quantized_model(p.m, p.plan, Mode::Static), probe);
        EXPECT_TRUE(a.bit_equal(q));
      }
}

// The FakeQuant op on its two work splits, per-tensor over several work items and per-channel on the last axis (a
// MatMul weight), equals QuantizeLinear + DequantizeLinear element for element. Catches a channel index that
// follows the row instead of the column on the last-axis path, and items that skip or repeat elements.
TEST(QatGraph, FakeQuantOpMatchesQuantizeDequantizeOnEverySplit) {
  auto node = [](const std::string& op, const std::string& domain, std::vector<Attribute> attrs) {
    Node n;
    n.op_type = op, n.domain = domain, n.name = op, n.inputs = {"x", "s", "z"}, n.outputs = {"y"};
    n.attrs = std::move(attrs);
    return n;
  };
  struct Setup {
    Shape shape;
    int64_t channels;
  };
  for (const Setup& su : {Setup{{2 * 16384 + 77}, 1}, Setup{{300, 70}, 70}}) {
    SCOPED_TRACE(shape_str(su.shape));
    Tensor x = random_tensor(su.shape, 41, -3.f, 3.f);
    Tensor s(DType::Float32, {su.channels}), zf(DType::Float32, {su.channels}), zq(DType::UInt8, {su.channels});
    for (int64_t k = 0; k < su.channels; ++k) {
      s.data<float>()[k] = 0.02f + 0.0005f * (float)k;
      zf.data<float>()[k] = (float)(100 + k % 50);
      zq.data<uint8_t>()[k] = (uint8_t)(100 + k % 50);
    }
    std::vector<Attribute> axis;
    if (su.channels > 1) axis.push_back(attr_int("axis", 1));
    auto fq_attrs = axis;
    fq_attrs.push_back(attr_int("qmin", 0));
    fq_attrs.push_back(attr_int("qmax", 255));
    Tensor a = eval_node(node("FakeQuant", "lowbit", fq_attrs), 1, {x, s, zf})[0];
    Tensor q = eval_node(node("QuantizeLinear", "", axis), 13, {x, s, zq})[0];
    Tensor d = eval_node(node("DequantizeLinear", "", axis), 13, {q, s, zq})[0];
    EXPECT_TRUE(a.bit_equal(d));
  }
}

// After training, write_back puts the trained weights and encodings where the export reads them: the exported model
// gives the trained graph's outputs bit for bit. Training lowers the loss of the W2A4 model on its data (a gradient
// with the wrong sign, or updates that never reach the graph, would not).
TEST(Qat, TrainsAndExportsTheTrainedNumbers) {
  Model m = residual_cnn(5);
  Tensor x = random_tensor({512, 2, 6, 6}, 31);
  auto labels = teacher_labels(m, x);
  Prepared p = prepare(m, bits(2, 4), x.slice_rows(0, 128));
  auto g = train::build_qat_graph(p.m, p.plan, train::QatMethod::Lsq, x.slice_rows(0, 16));
  auto loss = [&](const Model& model) { return train::cross_entropy(run_first(model, x), labels).loss; };
  double before = loss(g.model);
  train::QatOptions o;
  o.epochs = 4;
  o.batch_size = 32;
  o.optim.lr = 3e-3;
  auto logs = train::train_qat(g, x, labels, nullptr, o, {}, {}, {});
  ASSERT_EQ(logs.size(), 4u);
  EXPECT_LT(logs.back().loss, logs.front().loss);
  EXPECT_LT(loss(g.model), 0.8 * before);
  Model prepared = p.m;
  QuantSimPlan plan = p.plan;
  train::write_back(g, g.model, prepared, plan);
  Tensor probe = random_tensor({7, 2, 6, 6}, 32);
  EXPECT_TRUE(run_first(g.model, probe).bit_equal(run_first(build_quantized_model(prepared, plan, Mode::Static), probe)));
  // The scales moved (LSQ learns them) and stayed positive.
  bool moved = false;
  for (size_t i = 0; i < plan.acts.size(); ++i) {
    EXPECT_GT(plan.acts[i].enc.scale[0], 0.f);
    moved = moved || plan.acts[i].enc.scale[0] != p.plan.acts[i].enc.scale[0];
  }
  EXPECT_TRUE(moved);
}

// STE keeps the quantizers at their PTQ values and trains the weights only.
TEST(Qat, SteKeepsScales) {
  Model m = residual_cnn(6);
  Tensor x = random_tensor({128, 2, 6, 6}, 33);
  auto labels = teacher_labels(m, x);
  Prepared p = prepare(m, bits(4, 4), x);
  auto g = train::build_qat_graph(p.m, p.plan, train::QatMethod::Ste, x.slice_rows(0, 8));
  EXPECT_TRUE(g.quant_params.empty());
  train::QatOptions o;
  o.method = train::QatMethod::Ste;
  o.batch_size = 32;
  o.optim.lr = 1e-2;
  train::train_qat(g, x, labels, nullptr, o, {}, {}, {});
  Model prepared = p.m;
  QuantSimPlan plan = p.plan;
  train::write_back(g, g.model, prepared, plan);
  for (size_t i = 0; i < plan.acts.size(); ++i) EXPECT_EQ(plan.acts[i].enc.scale, p.plan.acts[i].enc.scale);
  EXPECT_FALSE(prepared.graph.initializers.at("w2").bit_equal(p.m.graph.initializers.at("w2")));
}

// PACT learns the activations' clipping levels (with decay) and keeps the weight scales.
TEST(Qat, PactLearnsActivationClippingOnly) {
  Model m = residual_cnn(8);
  Tensor x = random_tensor({128, 2, 6, 6}, 36);
  auto labels = teacher_labels(m, x);
  Prepared p = prepare(m, bits(4, 4), x);
  auto g = train::build_qat_graph(p.m, p.plan, train::QatMethod::Pact, x.slice_rows(0, 8));
  EXPECT_EQ(g.quant_params.size(), p.plan.acts.size());
  EXPECT_EQ(g.decayed_quant_params.size(), p.plan.acts.size());
  train::QatOptions o;
  o.method = train::QatMethod::Pact;
  o.batch_size = 32;
  o.optim.lr = 1e-2;
  o.optim.weight_decay = 1e-3;
  train::train_qat(g, x, labels, nullptr, o, {}, {}, {});
  Model prepared = p.m;
  QuantSimPlan plan = p.plan;
  train::write_back(g, g.model, prepared, plan);
  for (size_t i = 0; i < plan.weights.size(); ++i) EXPECT_EQ(plan.weights[i].enc.scale, p.plan.weights[i].enc.scale);
  bool moved = false;
  for (size_t i = 0; i < plan.acts.size(); ++i) moved = moved || plan.acts[i].enc.scale != p.plan.acts[i].enc.scale;
  EXPECT_TRUE(moved);
}

// Two epochs straight and one epoch, a checkpoint, and a resumed second epoch give the same parameters bit for bit.
TEST(Qat, ResumeFromACheckpointIsExact) {
  Model m = residual_cnn(7);
  Tensor x = random_tensor({96, 2, 6, 6}, 34);
  auto labels = teacher_labels(m, x);
  Prepared p = prepare(m, bits(4, 4), x);
  auto dir = testing::temp_dir("qat_resume");
  train::QatOptions o;
  o.epochs = 2;
  o.batch_size = 32;
  o.optim.lr = 1e-3;
  o.seed = 5;
  auto straight = train::build_qat_graph(p.m, p.plan, train::QatMethod::LsqPlus, x.slice_rows(0, 8));
  train::train_qat(straight, x, labels, nullptr, o, {}, {}, {});
  auto resumed = train::build_qat_graph(p.m, p.plan, train::QatMethod::LsqPlus, x.slice_rows(0, 8));
  train::QatOptions first = o;  // a two-epoch run that stops after its first epoch
  first.stop_after = 1;
  first.checkpoint = (dir / "ck.npz").string();
  train::train_qat(resumed, x, labels, nullptr, first, {}, {}, {});
  auto fresh = train::build_qat_graph(p.m, p.plan, train::QatMethod::LsqPlus, x.slice_rows(0, 8));
  train::QatOptions second = o;
  second.checkpoint = first.checkpoint;
  second.resume = true;
  auto logs = train::train_qat(fresh, x, labels, nullptr, second, {}, {}, {});
  ASSERT_EQ(logs.size(), 1u);
  EXPECT_EQ(logs[0].epoch, 2);
  for (auto& [name, t] : straight.model.graph.initializers)
    EXPECT_TRUE(t.bit_equal(fresh.model.graph.initializers.at(name))) << name;
  // A checkpoint of another method is refused.
  auto other = train::build_qat_graph(p.m, p.plan, train::QatMethod::Ste, x.slice_rows(0, 8));
  train::QatOptions wrong = second;
  wrong.method = train::QatMethod::Ste;
  EXPECT_NE(testing::error_of([&] { train::train_qat(other, x, labels, nullptr, wrong, {}, {}, {}); })
                .find("another --method"), std::string::npos);
  train::QatOptions longer = second;  // another schedule length is refused too
  longer.epochs = 3;
  auto again = train::build_qat_graph(p.m, p.plan, train::QatMethod::LsqPlus, x.slice_rows(0, 8));
  EXPECT_NE(testing::error_of([&] { train::train_qat(again, x, labels, nullptr, longer, {}, {}, {}); })
                .find("--epochs 2"), std::string::npos);
  std::filesystem::remove_all(dir);
}

TEST(Qat, RefusesWhatItDoesNotCover) {
  Model m = residual_cnn();
  Tensor x = random_tensor({8, 2, 6, 6}, 35);
  QuantConfig grouped = bits(4, 8);
  grouped.weights.spec.granularity = Granularity::PerGroup;
  grouped.weights.spec.group_size = 2;
  Prepared pg = prepare(m, grouped, x);
  EXPECT_NE(testing::error_of([&] { train::build_qat_graph(pg.m, pg.plan, train::QatMethod::Lsq, x); }).find("per-group"),
            std::string::npos);
  QuantConfig pow2 = bits(8, 8);
  pow2.activations.spec.scale_form = ScaleForm::PowerOfTwo;
  Prepared pp = prepare(m, pow2, x);
  EXPECT_NE(testing::error_of([&] { train::build_qat_graph(pp.m, pp.plan, train::QatMethod::Lsq, x); })
                .find("--method ste"), std::string::npos);
  EXPECT_NO_THROW(train::build_qat_graph(pp.m, pp.plan, train::QatMethod::Ste, x));
}

// Strategy 1 folds the running statistics in the graph (gamma, beta, W', b' train): before training it computes the
// folded model's function (up to the float rounding of W' = W / k), and after training the export, which folds the
// trained values, gives the trained graph's outputs bit for bit.
TEST(QatBnFold, StrategyOneTrainsGammaBetaAndExportsExactly) {
  Model m = bn_cnn(11);
  Tensor x = random_tensor({256, 2, 6, 6}, 71);
  auto labels = teacher_labels(m, x);
  Prepared p = prepare(m, bits(4, 4), x.slice_rows(0, 64));
  ASSERT_EQ(p.batch_norms.size(), 2u);
  auto g0 = train::build_qat_graph(p.m, p.plan, train::QatMethod::Lsq, x.slice_rows(0, 8), 0, p.batch_norms);
  auto g1 = train::build_qat_graph(p.m, p.plan, train::QatMethod::Lsq, x.slice_rows(0, 8), 1, p.batch_norms);
  ASSERT_EQ(g1.bn_folds.size(), 2u);
  for (auto& f : g1.bn_folds)  // gamma and beta train; the running statistics do not
    for (auto& n : {f.gamma, f.beta, f.weight, f.bias}) EXPECT_NE(std::find(g1.weights.begin(), g1.weights.end(), n), g1.weights.end()) << n;
  for (auto& f : g1.bn_folds)
    for (auto& n : {f.mean, f.var_or_inv_std}) EXPECT_EQ(std::find(g1.weights.begin(), g1.weights.end(), n), g1.weights.end()) << n;
  Tensor probe = random_tensor({16, 2, 6, 6}, 72);
  Tensor a = run_first(g0.model, probe), b = run_first(g1.model, probe);
  int agree = argmax_agreement(a, b);
  EXPECT_GE(agree, 15);  // a rounding flip on a grid boundary may move one
  train::QatOptions o;
  o.epochs = 2, o.batch_size = 32, o.optim.lr = 3e-3, o.bn_fold = 1;
  train::train_qat(g1, x, labels, nullptr, o, {}, {}, {});
  Model prepared = p.m;
  QuantSimPlan plan = p.plan;
  train::write_back(g1, g1.model, prepared, plan);
  EXPECT_TRUE(run_first(g1.model, probe).bit_equal(run_first(build_quantized_model(prepared, plan, Mode::Static), probe)));
  EXPECT_FALSE(g1.model.graph.initializers.at(g1.bn_folds[0].gamma).bit_equal(
      g0.model.graph.initializers.count(g1.bn_folds[0].gamma) ? g0.model.graph.initializers.at(g1.bn_folds[0].gamma)
                                                              : Tensor::from_vector<float>({4}, p.batch_norms.begin()->second.gamma)));
}

// Strategy 4: a BatchNormalization with batch statistics follows each quantized layer; its running statistics move
// with training until freeze_bn_step and not after; the export folds them, and agrees with the trained graph run
// with those statistics (inference mode) up to float rounding (same arg-max on all but rounding-boundary rows).
TEST(QatBnFold, StrategyFourUpdatesThenFreezesRunningStatistics) {
  Model m = bn_cnn(12);
  Tensor x = random_tensor({256, 2, 6, 6}, 73);
  auto labels = teacher_labels(m, x);
  Prepared p = prepare(m, bits(4, 8), x.slice_rows(0, 64));
  auto g = train::build_qat_graph(p.m, p.plan, train::QatMethod::Lsq, x.slice_rows(0, 8), 4, p.batch_norms);
  ASSERT_EQ(g.stats.size(), 4u);
  EXPECT_GE(g.model.opset(""), 14);
  std::string var = g.stats[1].first;
  Tensor var0 = g.model.graph.initializers.at(var).clone();
  train::QatOptions o;
  o.epochs = 2, o.batch_size = 32, o.optim.lr = 1e-3, o.bn_fold = 4, o.freeze_bn_step = 8;  // 8 steps per epoch
  train::QatOptions first = o;
  first.stop_after = 1;
  auto g1 = g;
  train::train_qat(g1, x, labels, nullptr, first, {}, {}, {});
  Tensor var1 = g1.model.graph.initializers.at(var).clone();
  EXPECT_FALSE(var1.bit_equal(var0));  // moved during the first epoch
  auto g2 = g;
  train::train_qat(g2, x, labels, nullptr, o, {}, {}, {});
  // Frozen after step 8: the second epoch leaves the statistics where the first one left them.
  EXPECT_TRUE(g2.model.graph.initializers.at(var).bit_equal(var1));
  Model prepared = p.m;
  QuantSimPlan plan = p.plan;
  train::write_back(g2, g2.model, prepared, plan);
  Tensor probe = random_tensor({64, 2, 6, 6}, 74);
  Tensor a = run_first(g2.model, probe);  // frozen: the BatchNormalizations run in inference mode
  Tensor b = run_first(build_quantized_model(prepared, plan, Mode::Static), probe);
  int agree = argmax_agreement(a, b);
  EXPECT_GE(agree, 62);
  EXPECT_NE(testing::error_of([&] { train::build_qat_graph(p.m, p.plan, train::QatMethod::Lsq, x, 5, p.batch_norms); })
                .find("the strategies are 0 to 4"), std::string::npos);
}

// Strategies 2 and 3: batch statistics from a float copy of each layer (folded into the quantized layer, or as a
// correction of its output); the running statistics follow them until frozen, after which the graph is the
// deployed one: strategy 2's export gives the frozen graph's outputs bit for bit, strategy 3's up to the float
// rounding of adding the bias after (not inside) the convolution.
TEST(QatBnFold, StrategiesTwoAndThreeFreezeIntoTheDeployedGraph) {
  for (int strategy : {2, 3}) {
    SCOPED_TRACE("strategy " + std::to_string(strategy));
    Model m = bn_cnn(13);
    Tensor x = random_tensor({256, 2, 6, 6}, 75);
    auto labels = teacher_labels(m, x);
    Prepared p = prepare(m, bits(4, 8), x.slice_rows(0, 64));
    auto g = train::build_qat_graph(p.m, p.plan, train::QatMethod::Lsq, x.slice_rows(0, 8), strategy, p.batch_norms);
    ASSERT_EQ(g.stats.size(), 4u);
    std::string mean = g.stats[0].first;
    Tensor mean0 = g.model.graph.initializers.at(mean).clone();
    size_t nodes_before = g.model.graph.nodes.size();
    train::QatOptions o;
    o.epochs = 2, o.batch_size = 32, o.optim.lr = 1e-3, o.bn_fold = strategy, o.freeze_bn_step = 8;
    train::QatOptions first = o;
    first.stop_after = 1;
    auto g1 = g;
    train::train_qat(g1, x, labels, nullptr, first, {}, {}, {});
    Tensor mean1 = g1.model.graph.initializers.at(mean).clone();
    EXPECT_FALSE(mean1.bit_equal(mean0));
    auto g2 = g;
    train::train_qat(g2, x, labels, nullptr, o, {}, {}, {});
    EXPECT_TRUE(g2.model.graph.initializers.at(mean).bit_equal(mean1));
    EXPECT_LT(g2.model.graph.nodes.size(), nodes_before);  // the float copies are gone
    Model prepared = p.m;
    QuantSimPlan plan = p.plan;
    train::write_back(g2, g2.model, prepared, plan);
    Tensor probe = random_tensor({64, 2, 6, 6}, 76);
    Tensor a = run_first(g2.model, probe), b = run_first(build_quantized_model(prepared, plan, Mode::Static), probe);
    if (strategy == 2) {
      EXPECT_TRUE(a.bit_equal(b));
    } else {
      int agree = argmax_agreement(a, b);
      EXPECT_GE(agree, 62);
    }
  }
}

// Optimizers against their update rules on one parameter, two steps.
TEST(Optim, UpdatesFollowTheirFormulas) {
  Tensor p = Tensor::from_vector<float>({2}, {1.f, -2.f}), g1 = Tensor::from_vector<float>({2}, {0.5f, 1.f}),
         g2 = Tensor::from_vector<float>({2}, {-1.f, 0.25f});
  auto two_steps = [&](train::OptimConfig c, double lr, bool decay) {
    train::Optimizer o(c);
    Tensor a = o.update("p", p, g1, lr, decay);
    return o.update("p", a, g2, lr, decay).to_f64();
  };
  train::OptimConfig sgd;
  sgd.kind = train::OptimKind::Sgd;
  sgd.momentum = 0.9;
  sgd.weight_decay = 0.1;
  // buf1 = g1 + wd p0; p1 = p0 - lr buf1; buf2 = 0.9 buf1 + g2 + wd p1; p2 = p1 - lr buf2.
  double b1 = 0.5 + 0.1 * 1, p1 = 1 - 0.1 * b1, b2 = 0.9 * b1 + (-1) + 0.1 * p1, p2 = p1 - 0.1 * b2;
  EXPECT_NEAR(two_steps(sgd, 0.1, true)[0], p2, 1e-6);
  sgd.nesterov = true;  // step = g + wd p + 0.9 buf
  double n1 = 1 - 0.1 * (b1 + 0.9 * b1), nb2 = 0.9 * b1 + (-1) + 0.1 * n1, n2 = n1 - 0.1 * ((-1) + 0.1 * n1 + 0.9 * nb2);
  EXPECT_NEAR(two_steps(sgd, 0.1, true)[0], n2, 1e-6);
  train::OptimConfig adam;  // m, v with bias correction: the first step moves by lr * sign(g)
  adam.kind = train::OptimKind::Adam;
  double m1 = 0.1 * 0.5, v1 = 0.001 * 0.25, a1 = 1 - 0.01 * (m1 / 0.1) / (std::sqrt(v1 / 0.001) + 1e-8);
  double m2 = 0.9 * m1 + 0.1 * (-1), v2 = 0.999 * v1 + 0.001 * 1;
  double a2 = a1 - 0.01 * (m2 / (1 - 0.81)) / (std::sqrt(v2 / (1 - 0.999 * 0.999)) + 1e-8);
  EXPECT_NEAR(two_steps(adam, 0.01, false)[0], a2, 1e-6);
  adam.kind = train::OptimKind::AdamW;
  adam.weight_decay = 0.5;  // decoupled: p <- p (1 - lr wd) - lr * adam_step
  double w1 = 1 * (1 - 0.005) - 0.01 * (m1 / 0.1) / (std::sqrt(v1 / 0.001) + 1e-8);
  double w2 = w1 * (1 - 0.005) - 0.01 * (m2 / (1 - 0.81)) / (std::sqrt(v2 / (1 - 0.999 * 0.999)) + 1e-8);
  EXPECT_NEAR(two_steps(adam, 0.01, true)[0], w2, 1e-6);
}

TEST(Optim, Schedules) {
  train::Schedule s;
  s.kind = train::ScheduleKind::Cosine;
  EXPECT_DOUBLE_EQ(s.factor(0, 100), 1.0);
  EXPECT_NEAR(s.factor(50, 100), 0.5, 1e-12);
  s.warmup_steps = 10;
  EXPECT_DOUBLE_EQ(s.factor(4, 110), 0.5);
  EXPECT_DOUBLE_EQ(s.factor(10, 110), 1.0);
  EXPECT_NEAR(s.factor(60, 110), 0.5, 1e-12);
  train::Schedule st;
  st.kind = train::ScheduleKind::Step;
  st.step_every = 3;
  st.gamma = 0.5;
  EXPECT_DOUBLE_EQ(st.factor(2, 10), 1.0);
  EXPECT_DOUBLE_EQ(st.factor(7, 10), 0.25);
}

// Cross-entropy and distillation gradients against central differences (double-accumulated losses).
TEST(Loss, GradientsMatchFiniteDifferences) {
  Tensor z = random_tensor({3, 4}, 41, -2, 2), t = random_tensor({3, 4}, 42, -2, 2);
  std::vector<int64_t> y = {2, 0, 3};
  auto ce = train::cross_entropy(z, y);
  auto kd = train::distillation(z, t, 2.0);
  for (int64_t j = 0; j < z.numel(); ++j) {
    auto at = [&](float d, bool distill) {
      Tensor zz = z.clone();
      zz.data<float>()[j] += d;
      return distill ? train::distillation(zz, t, 2.0).loss : train::cross_entropy(zz, y).loss;
    };
    float h = 1.f / 128;
    EXPECT_NEAR(ce.grad.data<float>()[j], (at(h, false) - at(-h, false)) / (2 * h), 2e-4);
    EXPECT_NEAR(kd.grad.data<float>()[j], (at(h, true) - at(-h, true)) / (2 * h), 2e-4);
  }
  EXPECT_NEAR(train::distillation(t, t, 3.0).loss, 0.0, 1e-12);  // KL of a distribution with itself
}

}  // namespace
}  // namespace lowbit
