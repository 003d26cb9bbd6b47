// Analysis library: the quantizer-toggling simulation matches the QDQ model, encodings at other bit widths, the
// analysis steps on a small model, and the config JSON round trip the mixed-precision fix relies on.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "analysis/analyze.h"
#include "analysis/gap.h"
#include "analysis/report.h"
#include "ir/onnx_io.h"
#include "quant/fold_bn.h"
#include "runtime/executor.h"
#include "test_util.h"

namespace lowbit {
namespace {

using testing::one_batch;
using testing::random_tensor;

struct Fixture {
  Model fp32 = testing::small_cnn(5), prepared;
  quant::QuantConfig cfg = quant::default_config();
  quant::QuantSimPlan plan;
  Tensor calib = random_tensor({32, 3, 8, 8}, 9);
  Fixture() {
    prepared = fp32;
    quant::prepare_for_quantization(prepared);
    cfg.weights.spec.grid.bits = 4;
    plan = quant::plan_quantizers(prepared, cfg);
    quant::compute_weight_encodings(prepared, plan);
    quant::calibrate(prepared, plan, one_batch(calib));
  }
};

float max_abs_diff(const Tensor& a, const Tensor& b) {
  float d = 0;
  for (int64_t i = 0; i < a.numel(); ++i) d = std::max(d, std::fabs(a.data<float>()[i] - b.data<float>()[i]));
  return d;
}

TEST(Analysis, SimulationMatchesTheQdqModelAndFp32WhenBypassed) {
  Fixture f;
  analysis::QuantSimRunner r(f.prepared, f.plan);
  EXPECT_EQ(r.quantizers().size(), f.plan.weights.size() + f.plan.acts.size());
  Tensor x = random_tensor({4, 3, 8, 8}, 3);
  Tensor fp = Executor(f.fp32).run({{"x", x}}).begin()->second;
  Tensor bypass = r.executor(r.all(false))->run({{"x", x}}).begin()->second;
  EXPECT_LT(max_abs_diff(fp, bypass), 1e-5f);
  Tensor qdq = Executor(quant::build_quantized_model(f.prepared, f.plan, quant::Mode::Static)).run({{"x", x}}).begin()->second;
  Tensor sim = r.executor(r.all(true))->run({{"x", x}}).begin()->second;
  EXPECT_LT(max_abs_diff(qdq, sim), 1e-5f);
  EXPECT_GT(max_abs_diff(fp, sim), 1e-4f);  // quantization does something
}

TEST(Analysis, WithBitsKeepsTheRangeOnAFinerGrid) {
  Fixture f;
  const quant::Encoding& e = f.plan.acts[0].enc;
  quant::Encoding e16 = analysis::with_bits(e, 16);
  EXPECT_EQ(e16.spec.grid.bits, 16);
  float lo = e.scale[0] * (float)(e.spec.grid.qmin() - e.zero_point[0]);
  float lo16 = e16.scale[0] * (float)(e16.spec.grid.qmin() - e16.zero_point[0]);
  EXPECT_NEAR(lo, lo16, std::fabs(e.scale[0]));
  EXPECT_LT(e16.scale[0], e.scale[0] / 100);
}

TEST(Analysis, StepsRankAndReportOnASmallModel) {
  Fixture f;
  analysis::EvalSet eval{random_tensor({64, 3, 8, 8}, 4), {}};
  analysis::AnalyzeOptions opt;
  opt.metric = analysis::Metric::Sqnr;
  auto rep = analysis::analyze(f.fp32, f.prepared, f.plan, f.cfg, f.calib, eval, opt);
  ASSERT_EQ(rep.quantizers.size(), f.plan.weights.size() + f.plan.acts.size());
  for (size_t i = 1; i < rep.quantizers.size(); ++i)
    EXPECT_LE(rep.quantizers[i - 1].output_sqnr_alone_db, rep.quantizers[i].output_sqnr_alone_db);
  // With the metric itself the output SQNR, the ranking measure and the metric are the same number.
  for (auto& q : rep.quantizers) EXPECT_EQ(q.alone, q.output_sqnr_alone_db);
  EXPECT_LT(rep.quantized, rep.fp32);
  EXPECT_FALSE(rep.recommendations.empty());
  EXPECT_FALSE(rep.channel_plots.empty());
  std::string html = analysis::report_html(rep, "small.onnx"), json = analysis::report_json(rep, "small.onnx");
  EXPECT_NE(html.find("<table id=\"quantizers\">"), std::string::npos);
  EXPECT_NE(html.find("<svg"), std::string::npos);
  EXPECT_EQ(html.find("<script"), std::string::npos);
  // Self-contained: the only URLs are the SVG namespace declarations.
  auto count = [&](const std::string& needle) {
    size_t n = 0;
    for (size_t p = html.find(needle); p != std::string::npos; p = html.find(needle, p + 1)) ++n;
    return n;
  };
  EXPECT_EQ(count("http"), count("xmlns=\"http://www.w3.org/2000/svg\""));
  EXPECT_NE(json.find("\"quantizers\""), std::string::npos);
  // The target-drop option is for accuracy.
  opt.target_drop = 0.5;
  EXPECT_NE(testing::error_of([&] { analysis::analyze(f.fp32, f.prepared, f.plan, f.cfg, f.calib, eval, opt); })
                .find("--target-drop"),
            std::string::npos);
}

// The config file round trip, checked against a hand-written document and against behaviour (the old test compared
// the serializer's output with itself). Mutations caught: the serializer dropping or renaming a key (e.g. group_size,
// percentile, an override's weight_bits) fails the document comparison; the parser ignoring a key it reads back
// fails the behaviour comparison (the reloaded config must quantize the model byte-identically).
TEST(Analysis, ConfigJsonRoundTrips) {
  quant::QuantConfig c = quant::default_config();
  c.weights.spec.grid.bits = 4;
  c.weights.spec.granularity = quant::Granularity::PerGroup;
  c.weights.spec.group_size = 3;
  c.activations.range = quant::RangeMethod::Percentile;
  c.activations.percentile = 99.9;
  c.pipeline.cle = true;
  c.pipeline.input_range = {0.f, 1.f};
  c.placement.float_ops = {"Softmax"};
  c.placement.fuse_add_into_conv = true;
  quant::Override o;
  o.node = "conv";
  o.weight_bits = 8;
  c.overrides.push_back(o);
  const char* expected = R"({
    "weights": {"bits": 4, "signed": true, "narrow": false, "symmetric": true, "granularity": "per_group",
                "group_size": 3, "scale": "float", "rounding": "half_even", "range": "minmax", "percentile": 99.99,
                "ema_momentum": 0.01},
    "activations": {"bits": 8, "signed": false, "narrow": false, "symmetric": false, "granularity": "per_tensor",
                    "scale": "float", "rounding": "half_even", "range": "percentile", "percentile": 99.9,
                    "ema_momentum": 0.01},
    "mode": "static", "quantize_model_input": true, "concat": "requantize", "int32_bias": false,
    "overrides": [{"node": "conv", "weight_bits": 8}],
    "pipeline": {"cle": true, "high_bias_absorption": true, "relu6": "relu", "bias_correction": "none",
                 "adaround": false, "adaround_iterations": 1000, "adaround_batch": 256, "adaround_reg_weight": 0.01,
                 "adaround_lr": 0.01, "adaround_max_rows": 8192, "samples": 256, "data_free": false,
                 "input_range": [0.0, 1.0], "logits_cross_entropy": false},
    "placement": {"activations": "outputs", "fused_activations": ["Relu", "Clip"],
                  "pass_through": ["Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze", "MaxPool",
                                   "GlobalMaxPool", "Identity", "Dropout", "Slice", "Split", "Gather", "Expand",
                                   "Tile", "DepthToSpace", "SpaceToDepth"],
                  "float_ops": ["Softmax"], "add": "fuse_into_conv"}
  })";
  std::string text = quant::config_to_json(c);
  EXPECT_EQ(nlohmann::json::parse(text), nlohmann::json::parse(expected)) << text;
  // Behaviour: the reloaded config quantizes the model to the same bytes.
  quant::QuantConfig back = quant::parse_config(text, "round trip");
  Fixture f;
  auto quantize = [&](const quant::QuantConfig& cfg) {
    auto plan = quant::plan_quantizers(f.prepared, cfg);
    quant::compute_weight_encodings(f.prepared, plan);
    quant::calibrate(f.prepared, plan, one_batch(f.calib));
    return serialize_onnx(quant::build_quantized_model(f.prepared, plan, cfg.mode), false);
  };
  EXPECT_EQ(quantize(back), quantize(c));
  quant::QuantConfig other = c;
  other.activations.percentile = 99.0;  // the comparison can tell configs apart
  EXPECT_NE(quantize(other), quantize(c));
}


// The gap's code comparison: elements, differing codes and the largest difference in steps, over batches; int8
// codes on both sides of zero; a shape mismatch is an Error naming the tensor.
TEST(Gap, CodeDiffCountsStepsAcrossBatches) {
  analysis::CodeDiff d;
  d.add(Tensor::from_vector<int8_t>({2, 3}, {-128, -1, 0, 5, 127, 3}),
        Tensor::from_vector<int8_t>({2, 3}, {-127, -1, 2, 5, 127, 3}), "t");
  EXPECT_EQ(d.elements, 6);
  EXPECT_EQ(d.differing, 2);
  EXPECT_EQ(d.max_steps, 2);
  d.add(Tensor::from_vector<int8_t>({1, 2}, {-128, 127}), Tensor::from_vector<int8_t>({1, 2}, {127, 127}), "t");
  EXPECT_EQ(d.elements, 8);
  EXPECT_EQ(d.differing, 3);
  EXPECT_EQ(d.max_steps, 255);
  EXPECT_DOUBLE_EQ(d.differing_percent(), 37.5);
  try {
    d.add(Tensor::from_vector<uint8_t>({2}, {1, 2}), Tensor::from_vector<uint8_t>({1, 2}, {1, 2}), "layer/out");
    FAIL() << "no error for a shape mismatch";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'layer/out' has shape [2]"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace lowbit
