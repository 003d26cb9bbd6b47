// Simulation == export, bit for bit (issue 12 item 1): for every rounding policy x bit width x weight granularity x
// symmetric/asymmetric x mode, the quantization simulation (analysis::QuantSimRunner, what `lowbit analyze` and the
// reports compute) and the exported QDQ file, reloaded and run through the executor, give identical outputs; where
// the file cannot express the configuration (half-away activation rounding: ONNX QuantizeLinear rounds half to
// even), export is refused with an error that says so. ONNX Runtime's agreement on the same exported files is
// checked by tests/ort/check_export_matrix.py.
// Mutations this catches: the per-tensor QuantizeLinear kernel rounding half away from zero (std::round):
// the half_even/static cases fail on the tie inputs; the refusal removed: the half_away/static cases fail; a Clip bound off by one code in the narrow-grid chain: the 2/4-bit cases
// fail; per-group weights exported with per-channel scales: the per_group cases fail. The matrix runs at opset 13
// and at opset 21, where 2/4-bit weights are stored as int4/uint4 and per-group weights as blocked
// DequantizeLinear (the grouped Conv through a Reshape of its [O, I*k*k] codes, the MatMul along K; the grouped
// ConvTranspose's groups do not lie along one axis and stay fake-quantized in float): a block scale taken from the
// wrong slice, or codes packed off by one element, fail the per-group and 4-bit cases there; the file is also
// checked to hold the int4 codes and the blocked nodes, so a silent fallback to the opset-13 forms fails too.
#include <gtest/gtest.h>

#include <cmath>

#include "analysis/quantsim_runner.h"
#include "ir/onnx_io.h"
#include "quant/fold_bn.h"
#include "quant/quantsim.h"
#include "runtime/executor.h"
#include "test_util.h"

using namespace lowbit;
using namespace lowbit::quant;
using namespace lowbit::testing;

namespace {

// x[N,4,6,6] -> grouped Conv -> Relu -> ConvTranspose(group 3) -> GAP -> Flatten -> MatMul -> Add -> y
Model exactness_model(int opset = 13) {
  GraphBuilder b(opset);
  b.input("x", DType::Float32, {-1, 4, 6, 6});
  b.initializer("w1", random_tensor({6, 2, 3, 3}, 11));
  b.initializer("b1", random_tensor({6}, 12));
  b.initializer("wt", random_tensor({6, 2, 2, 2}, 13));
  b.initializer("wm", random_tensor({6, 5}, 14));
  b.initializer("bm", random_tensor({5}, 15));
  auto c = b.node("Conv", {"x", "w1", "b1"}, {attr_ints("pads", {1, 1, 1, 1}), attr_int("group", 2)}, 1, "conv");
  auto r = b.node("Relu", {c}, {}, 1, "relu");
  auto t = b.node("ConvTranspose", {r, "wt"}, {attr_int("group", 3), attr_ints("strides", {2, 2})}, 1, "deconv");
  auto p = b.node("GlobalAveragePool", {t}, {}, 1, "gap");
  auto f = b.node("Flatten", {p}, {}, 1, "flatten");
  auto mm = b.node("MatMul", {f, "wm"}, {}, 1, "matmul");
  auto y = b.node("Add", {mm, "bm"}, {}, 1, "bias");
  b.output(y);
  return b.build();
}

// A copy of `probe` whose first elements are exact rounding ties of the model input's quantizer (x / s == k + 1/2 in
// float), so that a rounding policy that differs between simulation and export shows on every run, not only when
// random data happens to land on a tie.
Tensor with_ties(const Tensor& probe, const QuantSimPlan& plan) {
  Tensor t = probe.clone();
  for (auto& a : plan.acts) {
    if (a.tensor != "x" || a.dynamic) continue;
    float s = a.enc.scale[0];
    float* v = t.data<float>();
    int set = 0;
    for (int k = -6; k <= 6 && set < 40; ++k) {
      float target = (float)k + 0.5f;
      float x = target * s;
      for (int step = 0; step < 8 && x / s != target; ++step) x = std::nextafter(x, x / s < target ? INFINITY : -INFINITY);
      if (x / s == target) v[set++] = x;
    }
  }
  return t;
}

const char* mode_name(Mode m) {
  return m == Mode::Static ? "static" : m == Mode::WeightOnly ? "weight_only" : m == Mode::Dynamic ? "dynamic" : "fp16";
}

}  // namespace

TEST(ExportExactness, SimulationEqualsTheExportedModelForEveryPolicy) {
  Tensor calib = random_tensor({8, 4, 6, 6}, 21, -2.f, 3.f);
  Tensor probe = random_tensor({5, 4, 6, 6}, 22, -2.5f, 3.5f);  // wider than calibration: clipping is exercised
  auto dir = temp_dir("export_exactness");
  int compared = 0, refused = 0;
  for (int opset : {13, 21})
  for (Rounding rounding : {Rounding::HalfToEven, Rounding::HalfAwayFromZero})
    for (int bits : {2, 4, 8, 16})
      for (Granularity gran : {Granularity::PerTensor, Granularity::PerChannel, Granularity::PerGroup})
        for (bool sym : {true, false})
          for (Mode mode : {Mode::Static, Mode::WeightOnly, Mode::Dynamic, Mode::Fp16}) {
            Model m = exactness_model(opset);
            prepare_for_quantization(m);
            std::string tag = "opset" + std::to_string(opset) + "/" +
                              std::string(rounding == Rounding::HalfToEven ? "half_even" : "half_away") + "/w" +
                              std::to_string(bits) + "/" + std::to_string((int)gran) + (sym ? "/sym/" : "/asym/") +
                              mode_name(mode);
            SCOPED_TRACE(tag);
            QuantConfig cfg = default_config();
            cfg.mode = mode;
            for (TensorQuant* q : {&cfg.weights, &cfg.activations}) {
              q->spec.grid.bits = bits;
              q->spec.rounding = rounding;
              q->spec.symmetric = sym;
            }
            cfg.weights.spec.granularity = gran;
            cfg.weights.spec.group_size = 4;
            QuantSimPlan plan = plan_quantizers(m, cfg);
            ASSERT_FALSE(plan.weights.empty());
            compute_weight_encodings(m, plan);
            if (std::any_of(plan.acts.begin(), plan.acts.end(), [](auto& a) { return !a.dynamic; }))
              calibrate(m, plan, one_batch(calib));
            bool acts_rounded = mode == Mode::Static || mode == Mode::Dynamic;
            if (rounding == Rounding::HalfAwayFromZero && acts_rounded) {
              std::string err = error_of([&] { build_quantized_model(m, plan, mode); });
              EXPECT_NE(err.find("rounding 'half_away' cannot be exported"), std::string::npos) << err;
              ++refused;
              continue;
            }
            std::string path = (dir / "q.onnx").string();
            Model q = build_quantized_model(m, plan, mode);
            if (opset == 21 && mode != Mode::Fp16 && bits <= 8) {
              int int4 = 0, blocked = 0;
              for (auto& [name, t] : q.graph.initializers) int4 += dtype_is_4bit(t.dtype());
              for (auto& n : q.graph.nodes) blocked += n.op_type == "DequantizeLinear" && n.attr_int("block_size", 0) > 0;
              EXPECT_EQ(int4 > 0, bits <= 4);
              EXPECT_EQ(blocked, gran == Granularity::PerGroup ? 2 : 0);  // the Conv and the MatMul
            }
            save_onnx(q, path);
            Tensor input = with_ties(probe, plan);
            Tensor exported = Executor(load_onnx(path)).run({{"x", input}}).begin()->second;
            analysis::QuantSimRunner runner(m, plan, mode);
            Tensor simulated = runner.executor(runner.all(true))->run({{"x", input}}).begin()->second;
            ASSERT_EQ(exported.shape(), simulated.shape());
            EXPECT_TRUE(exported.bit_equal(simulated));
            ++compared;
          }
  EXPECT_EQ(compared, 2 * (2 * 4 * 3 * 2 * 4 - 4 * 3 * 2 * 2));
  EXPECT_EQ(refused, 2 * 4 * 3 * 2 * 2);
}

// The simulation is not trivially equal to the export: switching the quantizers off changes the output.
TEST(ExportExactness, SimulationActuallyQuantizes) {
  Model m = exactness_model();
  prepare_for_quantization(m);
  QuantConfig cfg = default_config();
  cfg.weights.spec.grid.bits = cfg.activations.spec.grid.bits = 4;
  QuantSimPlan plan = plan_quantizers(m, cfg);
  compute_weight_encodings(m, plan);
  Tensor x = random_tensor({4, 4, 6, 6}, 23, -2.f, 3.f);
  calibrate(m, plan, one_batch(x));
  analysis::QuantSimRunner runner(m, plan);
  Tensor on = runner.executor(runner.all(true))->run({{"x", x}}).begin()->second;
  Tensor off = runner.executor(runner.all(false))->run({{"x", x}}).begin()->second;
  EXPECT_FALSE(on.bit_equal(off));
}
