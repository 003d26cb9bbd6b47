// PTQ algorithms: CLE, high-bias absorption, bias correction (analytical and empirical), AdaRound, data-free.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "ptq/adaround.h"
#include "ptq/bias_correction.h"
#include "ptq/cle.h"
#include "ptq/data_free.h"
#include "quant/fold_bn.h"
#include "quant/quantsim.h"
#include "runtime/executor.h"
#include "test_util.h"

namespace lowbit {
namespace {

using testing::random_tensor;

Tensor run1(const Model& m, const Tensor& x) {
  Executor e(m);
  return e.run({{"x", x}}).begin()->second;
}

double max_rel_error(const Tensor& a, const Tensor& b) {
  double peak = 0, err = 0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    peak = std::max(peak, (double)std::fabs(a.data<float>()[i]));
    err = std::max(err, (double)std::fabs(a.data<float>()[i] - b.data<float>()[i]));
  }
  return err / peak;
}

ptq::LinearLayer layer_named(const Model& m, const std::string& name) {
  for (int i = 0; i < (int)m.graph.nodes.size(); ++i)
    if (m.graph.nodes[(size_t)i].name == name) return *ptq::linear_layer(m.graph, i);
  throw std::runtime_error("no layer " + name);
}

// A weight whose output channels have wildly different ranges (x 10^U(-2, 2)), as CLE's inputs often do.
Tensor skewed_weight(const Shape& s, uint32_t seed) {
  Tensor w = random_tensor(s, seed);
  std::mt19937 rng(seed + 100);
  std::uniform_real_distribution<float> e(-2.f, 2.f);
  int64_t per = w.numel() / s[0];
  for (int64_t o = 0; o < s[0]; ++o) {
    float f = std::pow(10.f, e(rng));
    for (int64_t i = 0; i < per; ++i) w.data<float>()[o * per + i] *= f;
  }
  return w;
}

// x[N,4,8,8] -> Conv 8 (3x3) -> Relu -> Conv 8 depthwise -> Relu -> Conv 8 (group 2, 1x1) -> MaxPool -> Conv 6 (3x3)
//   -> Relu -> GlobalAveragePool -> Flatten -> Gemm 3
Model conv_chain(uint32_t seed) {
  GraphBuilder b(13);
  b.input("x", DType::Float32, {-1, 4, 8, 8});
  b.initializer("w1", skewed_weight({8, 4, 3, 3}, seed));
  b.initializer("b1", random_tensor({8}, seed + 1));
  b.initializer("w2", skewed_weight({8, 1, 3, 3}, seed + 2));
  b.initializer("b2", random_tensor({8}, seed + 3));
  b.initializer("w3", skewed_weight({8, 4, 1, 1}, seed + 4));
  b.initializer("w4", skewed_weight({6, 8, 3, 3}, seed + 5));
  b.initializer("b4", random_tensor({6}, seed + 6));
  b.initializer("fw", random_tensor({3, 6}, seed + 7));
  b.initializer("fb", random_tensor({3}, seed + 8));
  auto c1 = b.node("Conv", {"x", "w1", "b1"}, {attr_ints("pads", {1, 1, 1, 1})}, 1, "c1");
  auto r1 = b.node("Relu", {c1}, {}, 1, "r1");
  auto c2 = b.node("Conv", {r1, "w2", "b2"}, {attr_ints("pads", {1, 1, 1, 1}), attr_int("group", 8)}, 1, "dw");
  auto r2 = b.node("Relu", {c2}, {}, 1, "r2");
  auto c3 = b.node("Conv", {r2, "w3"}, {attr_int("group", 2)}, 1, "grouped");
  auto p = b.node("MaxPool", {c3}, {attr_ints("kernel_shape", {2, 2}), attr_ints("strides", {2, 2})}, 1, "pool");
  auto c4 = b.node("Conv", {p, "w4", "b4"}, {attr_ints("pads", {1, 1, 1, 1})}, 1, "c4");
  auto r4 = b.node("Relu", {c4}, {}, 1, "r4");
  auto g = b.node("GlobalAveragePool", {r4}, {}, 1, "gap");
  auto f = b.node("Flatten", {g}, {}, 1, "flat");
  auto y = b.node("Gemm", {f, "fw", "fb"}, {attr_int("transB", 1)}, 1, "fc");
  b.output(y);
  return b.build();
}

TEST(Cle, ScalesEqualizeRangesAsThePaperSays) {
  std::vector<float> r1 = {4, 1, 0, 2}, r2 = {1, 4, 3, 0};
  auto s = ptq::equalization_scales(r1, r2);
  EXPECT_FLOAT_EQ(s[0], 2.f);
  EXPECT_FLOAT_EQ(s[1], 0.5f);
  EXPECT_FLOAT_EQ(s[2], 1.f);  // a dead channel keeps scale 1
  EXPECT_FLOAT_EQ(s[3], 1.f);
  // On arrays: after scaling, output range i of layer 1 == input range i of layer 2 == sqrt(r1 r2).
  ptq::LayerArrays a{{3, 2, 1, 1, false}, {4, 1, -2, 0.5f, 0.1f, 0.2f}, {1, 2, 3}};
  ptq::LayerArrays b{{2, 3, 1, 1, false}, {1, 8, -0.5f, 2, 0.25f, 0.1f}, {}};
  auto ra = ptq::output_channel_ranges(a), rb = ptq::input_channel_ranges(b);
  ptq::equalize_chain({&a, &b});
  auto ra2 = ptq::output_channel_ranges(a), rb2 = ptq::input_channel_ranges(b);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_NEAR(ra2[i], rb2[i], 1e-6f);
    EXPECT_NEAR(ra2[i], std::sqrt(ra[i] * rb[i]), 1e-6f);
  }
}

TEST(Cle, PreservesTheFunctionOfRandomConvChainsIncludingDepthwiseAndGrouped) {
  for (uint32_t seed : {1u, 2u, 3u}) {
    Model m = conv_chain(seed);
    Tensor x = random_tensor({2, 4, 8, 8}, seed + 50);
    Tensor before = run1(m, x);
    std::map<std::string, quant::BnParams> bn;
    ptq::CleReport r = ptq::equalize_model(m, bn);
    // c1 -> dw -> grouped -> (MaxPool) c4 -> (GAP, Flatten) fc: one chain of four pairs.
    EXPECT_EQ(r.chains, 1);
    EXPECT_EQ(r.pairs, 4);
    EXPECT_LT(r.min_scale, 0.5f);
    EXPECT_GT(r.max_scale, 2.f);
    EXPECT_LT(max_rel_error(before, run1(m, x)), 1e-4) << "seed " << seed;
    // Ranges between c1 and dw are now equal channel by channel.
    auto l1 = layer_named(m, "c1"), l2 = layer_named(m, "dw");
    ptq::LayerArrays a{l1.shape, ptq::get_weight(m.graph, l1), {}};
    ptq::LayerArrays b{l2.shape, ptq::get_weight(m.graph, l2), {}};
    auto ra = ptq::output_channel_ranges(a), rb = ptq::input_channel_ranges(b);
    for (size_t i = 0; i < ra.size(); ++i) EXPECT_NEAR(ra[i] / rb[i], 1.f, 1e-3f);
  }
}

TEST(Cle, Relu6IsReplacedOrLeftAloneAsConfigured) {
  GraphBuilder b(13);
  b.input("x", DType::Float32, {-1, 3});
  b.initializer("w1", skewed_weight({4, 3}, 5));
  b.initializer("w2", random_tensor({2, 4}, 6));
  b.initializer("lo", Tensor::scalar<float>(0.f));
  b.initializer("hi", Tensor::scalar<float>(6.f));
  auto h = b.node("Gemm", {"x", "w1"}, {attr_int("transB", 1)}, 1, "g1");
  auto c = b.node("Clip", {h, "lo", "hi"}, {}, 1, "relu6");
  b.output(b.node("Gemm", {c, "w2"}, {attr_int("transB", 1)}, 1, "g2"));
  Model m = b.build();
  std::map<std::string, quant::BnParams> bn;
  Model skip = m;
  ptq::CleOptions o;
  o.relu6 = ptq::Relu6Policy::Skip;
  auto rs = ptq::equalize_model(skip, bn, o);
  EXPECT_EQ(rs.pairs, 0);
  EXPECT_EQ(rs.relu6_skipped, 1);
  auto rr = ptq::equalize_model(m, bn);
  EXPECT_EQ(rr.pairs, 1);
  EXPECT_EQ(rr.relu6_replaced, 1);
  bool has_relu = false;
  for (auto& n : m.graph.nodes) has_relu |= n.op_type == "Relu";
  EXPECT_TRUE(has_relu);
}

TEST(Cle, HighBiasAbsorptionKeepsTheFunctionWherePreActivationsStayAboveTheShift) {
  // a: Gemm 3 -> 2 whose outputs sit around beta = (5, 0.5) with gamma = (1, 1): c = (2, 0).
  ptq::LayerArrays a{{2, 3, 1, 1, false}, {0.1f, 0.2f, -0.1f, 0.3f, 0.1f, 0.2f}, {5.f, 0.5f}};
  ptq::LayerArrays b{{2, 2, 1, 1, false}, {1.f, -2.f, 0.5f, 3.f}, {0.f, 1.f}};
  std::vector<float> beta = {5.f, 0.5f}, gamma = {1.f, -1.f};
  ptq::LayerArrays a0 = a, b0 = b;
  auto c = ptq::absorb_high_bias(a, b, beta, gamma);
  EXPECT_FLOAT_EQ(c[0], 2.f);
  EXPECT_FLOAT_EQ(c[1], 0.f);
  EXPECT_FLOAT_EQ(beta[0], 3.f);
  auto f = [](const ptq::LayerArrays& l1, const ptq::LayerArrays& l2, const std::vector<float>& x) {
    std::vector<float> h(2), y(2);
    for (int o = 0; o < 2; ++o) {
      float s = l1.b[(size_t)o];
      for (int k = 0; k < 3; ++k) s += l1.w[(size_t)(o * 3 + k)] * x[(size_t)k];
      h[(size_t)o] = std::max(0.f, s);
    }
    for (int o = 0; o < 2; ++o) y[(size_t)o] = l2.b[(size_t)o] + l2.w[(size_t)(o * 2)] * h[0] + l2.w[(size_t)(o * 2 + 1)] * h[1];
    return y;
  };
  for (auto x : std::vector<std::vector<float>>{{1, 2, 3}, {-1, 0.5f, 2}, {0, 0, 0}}) {
    auto y0 = f(a0, b0, x), y1 = f(a, b, x);
    for (int o = 0; o < 2; ++o) EXPECT_NEAR(y0[(size_t)o], y1[(size_t)o], 1e-5f);
  }
}

TEST(BiasCorrection, ClippedNormalMomentsMatchMonteCarlo) {
  std::mt19937 rng(3);
  for (auto [mu, sigma, lo, hi] : std::vector<std::array<double, 4>>{
           {0.5, 1.0, 0, INFINITY}, {-1, 2, 0, 6}, {3, 0.5, -INFINITY, INFINITY}, {2, 3, 0, 6}}) {
    std::normal_distribution<double> d(mu, sigma);
    double s = 0, s2 = 0;
    const int n = 400000;
    for (int i = 0; i < n; ++i) {
      double v = std::clamp(d(rng), lo, hi);
      s += v;
      s2 += v * v;
    }
    double mean = s / n, sd = std::sqrt(s2 / n - mean * mean);
    EXPECT_NEAR(ptq::clipped_normal_mean(mu, sigma, lo, hi), mean, 4 * sd / std::sqrt(n) + 1e-9);
    EXPECT_NEAR(ptq::clipped_normal_std(mu, sigma, lo, hi), sd, 0.01 * sd);
  }
  EXPECT_DOUBLE_EQ(ptq::clipped_normal_mean(7, 0, 0, 6), 6.0);
}

// x[N, 6] -> Gemm A (identity) -> BatchNormalization(gamma, beta) -> Relu -> Gemm B (5) -> y
Model bn_relu_gemm(uint32_t seed) {
  GraphBuilder b(13);
  b.input("x", DType::Float32, {-1, 6});
  std::vector<float> eye(36, 0.f);
  for (int i = 0; i < 6; ++i) eye[(size_t)(i * 7)] = 1.f;
  b.initializer("wa", Tensor::from_vector<float>({6, 6}, eye));
  b.initializer("gamma", Tensor::from_vector<float>({6}, {1.f, 0.5f, 2.f, 1.5f, 0.8f, 1.f}));
  b.initializer("beta", Tensor::from_vector<float>({6}, {0.5f, -0.3f, 1.f, 0.f, 2.f, -1.f}));
  b.initializer("mean", Tensor::from_vector<float>({6}, std::vector<float>(6, 0.f)));
  b.initializer("var", Tensor::from_vector<float>({6}, std::vector<float>(6, 1.f)));
  b.initializer("wb", random_tensor({5, 6}, seed));
  b.initializer("bb", random_tensor({5}, seed + 1));
  auto a = b.node("Gemm", {"x", "wa"}, {attr_int("transB", 1)}, 1, "A");
  auto n = b.node("BatchNormalization", {a, "gamma", "beta", "mean", "var"}, {attr_float("epsilon", 0.f)}, 1, "bn");
  auto r = b.node("Relu", {n}, {}, 1, "relu");
  b.output(b.node("Gemm", {r, "wb", "bb"}, {attr_int("transB", 1)}, 1, "B"));
  return b.build();
}

Tensor gaussian(const Shape& s, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.f, 1.f);
  Tensor t(DType::Float32, s);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = d(rng);
  return t;
}

// Only B's weight is quantized (3-bit per-tensor: a visible shift), so both methods correct the same thing.
quant::QuantSimPlan only_b_plan(const Model& m) {
  quant::QuantConfig cfg = quant::default_config();
  cfg.mode = quant::Mode::WeightOnly;
  cfg.weights.spec.grid.bits = 3;
  cfg.weights.spec.granularity = quant::Granularity::PerTensor;
  quant::Override skip;
  skip.node = "A";
  skip.skip = true;
  cfg.overrides.push_back(skip);
  auto plan = quant::plan_quantizers(m, cfg);
  quant::compute_weight_encodings(m, plan);
  return plan;
}

// Fitted on one sample, evaluated on another (held out): the corrected model's mean output equals the FP32 model's
// within the sampling noise of both estimates, 4 * sd(y_fp - y_q) * sqrt(1/n_fit + 1/n_eval) per channel.
// Mutation caught: a correction with the wrong sign, or none, leaves the 3-bit shift (> 0.02, far above the noise).
TEST(BiasCorrection, EmpiricalRemovesTheMeanOutputShift) {
  Model m = bn_relu_gemm(9);
  quant::prepare_for_quantization(m);
  auto plan = only_b_plan(m);
  const int64_t n_fit = 4000, n_eval = 4000;
  Tensor x = gaussian({n_fit, 6}, 1), held_out = gaussian({n_eval, 6}, 77);
  auto quantized_out = [&](const Model& mm) { return run1(quant::build_quantized_model(mm, plan, quant::Mode::WeightOnly), held_out); };
  Tensor y_fp = run1(m, held_out);
  auto fp = ptq::channel_means(y_fp, -1);
  auto before = ptq::channel_means(quantized_out(m), -1);
  double shift = 0;
  for (size_t o = 0; o < fp.size(); ++o) shift = std::max(shift, std::fabs(fp[o] - before[o]));
  EXPECT_GT(shift, 0.02);  // 3-bit weights shift the mean visibly
  Model corrected = m;
  auto rep = ptq::empirical_bias_correction(corrected, plan, x);
  EXPECT_EQ(rep.corrected, 1);
  Tensor y_q = quantized_out(corrected);
  auto after = ptq::channel_means(y_q, -1);
  int64_t C = y_fp.dim(1);
  for (int64_t o = 0; o < C; ++o) {
    double s = 0, s2 = 0;
    for (int64_t r = 0; r < n_eval; ++r) {
      double d = (double)y_fp.data<float>()[r * C + o] - y_q.data<float>()[r * C + o];
      s += d;
      s2 += d * d;
    }
    double sd = std::sqrt(std::max(0.0, s2 / n_eval - (s / n_eval) * (s / n_eval)));
    double tol = 4 * sd * std::sqrt(1.0 / n_fit + 1.0 / n_eval);
    EXPECT_NEAR(after[(size_t)o], fp[(size_t)o], tol) << "channel " << o;
    EXPECT_LT(tol, shift / 4) << "the noise bound must be tight enough to see the shift";
  }
}

TEST(BiasCorrection, AnalyticalMatchesEmpiricalOnGaussianInputs) {
  Model m = bn_relu_gemm(11);
  auto prep = quant::prepare_for_quantization(m);
  ASSERT_EQ(prep.batch_norms.size(), 1u);
  auto plan = only_b_plan(m);
  const int64_t n = 20000;
  Tensor x = gaussian({n, 6}, 2);  // BN output is exactly N(beta, gamma^2): the analytical model holds
  Model ana = m, emp = m;
  auto ra = ptq::analytical_bias_correction(ana, plan, prep.batch_norms);
  ASSERT_EQ(ra.corrected, 1) << (ra.skipped.empty() ? "" : ra.skipped[0]);
  ptq::empirical_bias_correction(emp, plan, x);
  // The empirical estimate of E[eps x] carries sampling noise: standard error sd(eps x)/sqrt(n). Allow 4 of them.
  const auto l = layer_named(m, "B");
  auto w = ptq::get_weight(m.graph, l);
  std::vector<float> wq(w.size());
  quant::fake_quantize(w.data(), wq.data(), plan.weights[0].enc);
  Tensor h = Executor(m).run({{"x", x}}, {l.input}).at(l.input);
  auto ba = ptq::get_bias(ana.graph, layer_named(ana, "B"));
  auto be = ptq::get_bias(emp.graph, layer_named(emp, "B"));
  for (int64_t o = 0; o < 5; ++o) {
    double s = 0, s2 = 0;
    for (int64_t r = 0; r < n; ++r) {
      double v = 0;
      for (int64_t k = 0; k < 6; ++k) v += (wq[(size_t)(o * 6 + k)] - w[(size_t)(o * 6 + k)]) * h.data<float>()[r * 6 + k];
      s += v;
      s2 += v * v;
    }
    double se = std::sqrt(std::max(0.0, s2 / n - (s / n) * (s / n)) / n);
    EXPECT_NEAR(ba[(size_t)o], be[(size_t)o], 4 * se + 1e-5) << "channel " << o;
  }
}

TEST(BiasCorrection, AnalyticalSaysWhyItSkipsALayer) {
  Model m = testing::small_cnn(3);  // no BatchNorm anywhere
  quant::prepare_for_quantization(m);
  quant::QuantConfig cfg = quant::default_config();
  auto plan = quant::plan_quantizers(m, cfg);
  quant::compute_weight_encodings(m, plan);
  auto r = ptq::analytical_bias_correction(m, plan, {});
  EXPECT_EQ(r.corrected, 0);
  ASSERT_EQ(r.skipped.size(), 2u);
  EXPECT_NE(r.skipped[0].find("conv"), std::string::npos);
}

// A small random AdaRound problem: grouped conv-like layer, every weight well inside the grid.
ptq::AdaRoundProblem small_problem(uint32_t seed, bool relu) {
  ptq::AdaRoundProblem p;
  p.shape = {4, 6, 2, 2, false};  // O 4, C 6, groups 2, kernel 2 -> K 6
  int64_t K = p.shape.k(), O = 4;
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.f, 1.f);
  p.w.resize((size_t)(O * K));
  for (auto& v : p.w) v = 0.3f * d(rng);
  p.bias = {0.1f, -0.2f, 0.05f, 0.f};
  p.scale = {0.05f, 0.07f, 0.04f, 0.06f};
  p.zero_point = {0, 0, 0, 0};
  p.slice.resize(p.w.size());
  for (int64_t o = 0; o < O; ++o)
    for (int64_t k = 0; k < K; ++k) p.slice[(size_t)(o * K + k)] = (int32_t)o;
  p.qmin = -128;
  p.qmax = 127;
  if (relu) p.act = {0.f, INFINITY};
  p.rows = 64;
  p.x.resize((size_t)(2 * p.rows * K));
  for (auto& v : p.x) v = d(rng);
  // Target: the FP32 layer on slightly different (FP32) inputs, as in asymmetric reconstruction.
  p.target.resize((size_t)(p.rows * O));
  for (int64_t r = 0; r < p.rows; ++r)
    for (int64_t o = 0; o < O; ++o) {
      int64_t g = o / 2;
      double y = p.bias[(size_t)o];
      for (int64_t k = 0; k < K; ++k) y += p.w[(size_t)(o * K + k)] * (p.x[(size_t)((r * 2 + g) * K + k)] + 0.05 * d(rng));
      p.target[(size_t)(r * O + o)] = relu ? std::max(0.f, (float)y) : (float)y;
    }
  return p;
}

TEST(AdaRound, GradientMatchesFiniteDifferences) {
  for (bool relu : {false, true}) {
    auto p = small_problem(4, relu);
    auto v = ptq::adaround_init(p);
    std::vector<int64_t> rows(p.rows);
    for (int64_t i = 0; i < p.rows; ++i) rows[(size_t)i] = i;
    const float beta = 4.f, lambda = 0.05f;
    std::vector<float> g;
    ptq::adaround_loss(p, v, rows, beta, lambda, &g);
    auto total = [&](const std::vector<float>& vv) {
      auto L = ptq::adaround_loss(p, vv, rows, beta, lambda, nullptr);
      return L.recon + L.reg;
    };
    int checked = 0;
    for (size_t e = 0; e < v.size(); ++e) {
      const float eps = 1e-2f;
      auto vp = v, vm = v;
      vp[e] += eps;
      vm[e] -= eps;
      double fd = (total(vp) - total(vm)) / (2 * eps);
      // float32 forward passes: allow 2% of the gradient's scale plus an absolute floor from rounding.
      EXPECT_NEAR(g[e], fd, 0.02 * std::fabs(fd) + 2e-4) << "element " << e << (relu ? " (relu)" : "");
      ++checked;
    }
    EXPECT_EQ(checked, 24);
  }
}

TEST(AdaRound, LossDecreasesAndResultIsOnTheGridAndDeterministic) {
  auto p = small_problem(5, true);
  ptq::AdaRoundOptions o;
  o.iterations = 400;
  o.batch = 32;
  auto r = ptq::adaround_layer(p, o);
  EXPECT_LT(r.loss_adaround, r.loss_nearest);
  EXPECT_GT(r.rounded_up_changed, 0);
  for (size_t e = 0; e < r.w.size(); ++e) {
    float q = r.w[e] / p.scale[(size_t)p.slice[e]];
    EXPECT_NEAR(q, std::round(q), 1e-3f);
    // Up or down from the FP32 weight, never further.
    EXPECT_LE(std::fabs(r.w[e] - p.w[e]), p.scale[(size_t)p.slice[e]] * 1.0001f);
  }
  auto r2 = ptq::adaround_layer(p, o);
  EXPECT_EQ(r.w, r2.w);
}

TEST(AdaRound, GraphPassRoundsEveryLayerAndBuildKeepsItsIntegers) {
  Model m = testing::small_cnn(7);
  quant::prepare_for_quantization(m);
  quant::QuantConfig cfg = quant::default_config();
  cfg.weights.spec.grid.bits = 4;
  cfg.mode = quant::Mode::WeightOnly;
  auto plan = quant::plan_quantizers(m, cfg);
  quant::compute_weight_encodings(m, plan);
  Tensor x = random_tensor({16, 3, 8, 8}, 3);
  Model before = m;
  ptq::AdaRoundOptions o;
  o.iterations = 200;
  o.max_rows = 512;
  auto rep = ptq::adaround_model(m, plan, x, o);
  ASSERT_EQ(rep.layers.size(), 2u);
  EXPECT_TRUE(rep.skipped.empty());
  EXPECT_EQ(rep.layers[0].rows, 512);  // 16 samples x 32 of 64 positions
  EXPECT_EQ(rep.layers[1].rows, 16);   // Gemm: one row per sample
  for (auto& l : rep.layers) EXPECT_LE(l.loss_adaround, l.loss_nearest * 1.0001);
  // The rounded weights are exactly representable: re-quantizing them with the same encoding changes nothing.
  for (auto& wq : plan.weights) {
    const Tensor& w = m.graph.initializers.at(wq.tensor);
    std::vector<float> fq((size_t)w.numel());
    quant::fake_quantize(w.data<float>(), fq.data(), wq.enc);
    for (int64_t i = 0; i < w.numel(); ++i) EXPECT_EQ(fq[(size_t)i], w.data<float>()[i]);
  }
  // Deterministic for a seed.
  Model again = before;
  ptq::adaround_model(again, plan, x, o);
  for (auto& wq : plan.weights)
    EXPECT_TRUE(again.graph.initializers.at(wq.tensor).bit_equal(m.graph.initializers.at(wq.tensor)));
}

TEST(DataFree, PropagatedRangesFollowTheBatchNormRuleAndExplainGaps) {
  Model m = bn_relu_gemm(3);
  auto prep = quant::prepare_for_quantization(m);
  auto stats = ptq::propagate_statistics(m, prep.batch_norms, {});
  const std::string relu_out = m.graph.nodes[1].outputs[0];
  ASSERT_TRUE(stats.count(relu_out));
  // beta - 6|gamma| .. beta + 6|gamma| over channels, clamped at 0 by the ReLU: hi = max(beta + 6 gamma) = 2 + 4.8.
  EXPECT_NEAR(stats.at(relu_out).lo, 0.0, 1e-6);
  EXPECT_NEAR(stats.at(relu_out).hi, 13.0, 1e-5);  // channel 2: 1 + 6 * 2
  quant::QuantConfig cfg = quant::default_config();
  auto plan = quant::plan_quantizers(m, cfg);
  std::string err = testing::error_of([&] { ptq::set_data_free_ranges(m, plan, stats); });
  EXPECT_NE(err.find("'x'"), std::string::npos) << err;  // the model input needs its range
  stats = ptq::propagate_statistics(m, prep.batch_norms, {-3.f, 3.f});
  ptq::set_data_free_ranges(m, plan, stats);
  for (auto& a : plan.acts) EXPECT_FALSE(a.enc.scale.empty());
}

}  // namespace
}  // namespace lowbit
