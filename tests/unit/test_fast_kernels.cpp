// Fast kernels against the reference kernels that specify them (XNNPACK-tester style): float paths within an error
// bound derived from the arithmetic, paths that claim the same bits compared bit for bit. Runs on whatever the CPU
// offers; CTest also runs it with oneDNN capped at AVX2 (DNNL_MAX_CPU_ISA), the other machine class CI meets.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "core/storage_pool.h"
#include "kernels/conv.h"
#include "kernels/conv_dnnl.h"
#include "kernels/dispatch.h"
#include "kernels/elementwise.h"
#include "kernels/pool.h"
#include "ir/infer_types.h"
#include "runtime/executor.h"
#include "test_util.h"

using namespace lowbit;
using namespace lowbit::testing;

namespace {

// Restores fast kernels at the end of a test that turns them off.
struct ReferenceKernels {
  ReferenceKernels() { set_fast_kernels(false); }
  ~ReferenceKernels() { set_fast_kernels(true); }
};

struct Geo {
  int64_t n, c, m, group;
  std::vector<int64_t> in, k, stride, dil, pb, pe;
};

void PrintTo(const Geo& p, std::ostream* os) {
  auto v = [&](const char* n, const std::vector<int64_t>& x) {
    *os << " " << n << "=";
    for (size_t i = 0; i < x.size(); ++i) *os << (i ? "x" : "") << x[i];
  };
  *os << "n=" << p.n << " c=" << p.c << " m=" << p.m << " group=" << p.group;
  v("in", p.in), v("k", p.k), v("stride", p.stride), v("dil", p.dil), v("pads", p.pb), v("", p.pe);
}

ConvGeom make_geom(const Geo& p, bool ceil_mode = false) {
  ConvGeom g;
  g.batch = p.n, g.in_ch = p.c, g.out_ch = p.m, g.group = p.group;
  g.in = p.in, g.kernel = p.k, g.stride = p.stride, g.dilation = p.dil, g.pad_begin = p.pb, g.pad_end = p.pe;
  resolve_auto_pad("NOTSET", g, ceil_mode);
  return g;
}

// Sum of |x * w| over the taps of every output (plus |bias|), in double: the scale of the rounding error any
// summation order can make.
std::vector<double> abs_dot(const ConvGeom& g, const Tensor& x, const Tensor& w, const Tensor& b) {
  Tensor ax = x.clone(), aw = w.clone();
  for (int64_t i = 0; i < ax.numel(); ++i) ax.data<float>()[i] = std::fabs(ax.data<float>()[i]);
  for (int64_t i = 0; i < aw.numel(); ++i) aw.data<float>()[i] = std::fabs(aw.data<float>()[i]);
  std::vector<float> y((size_t)(g.batch * g.out_ch * g.out_size()));
  conv_f32(g, ax.data<float>(), aw.data<float>(), nullptr, y.data());
  std::vector<double> s(y.size());
  int64_t P = g.out_size();
  for (size_t i = 0; i < y.size(); ++i)
    s[i] = (double)y[i] * (1 + 1e-6) + std::fabs((double)b.data<float>()[(i / P) % g.out_ch]);
  return s;
}

class DnnlConvSweep : public ::testing::TestWithParam<Geo> {};

TEST_P(DnnlConvSweep, WithinTheRoundingBoundOfTheReference) {
  ConvGeom g = make_geom(GetParam());
  Shape xs = {g.batch, g.in_ch}, ws = {g.out_ch, g.in_ch / g.group};
  xs.insert(xs.end(), g.in.begin(), g.in.end());
  ws.insert(ws.end(), g.kernel.begin(), g.kernel.end());
  Tensor x = random_tensor(xs, 11), w = random_tensor(ws, 12), b = random_tensor({g.out_ch}, 13);
  std::vector<float> ref((size_t)(g.batch * g.out_ch * g.out_size())), fast(ref.size(), NAN);
  conv_f32(g, x.data<float>(), w.data<float>(), b.data<float>(), ref.data());
  DnnlConv conv(g, true);
  conv.run(x.data<float>(), conv.prepare_weights(w.data<float>()), b.data<float>(), fast.data());
  // Each result is a sum of n = C/group * K + 1 rounded terms; in any order (FMA or not) its error is at most
  // gamma_n * sum|terms| with gamma_n = n u / (1 - n u), u = 2^-24. Two such results differ by at most twice that.
  double n = (double)(g.in_ch / g.group * g.kernel_size() + 1), u = std::ldexp(1.0, -24);
  double gamma = n * u / (1 - n * u);
  auto scale = abs_dot(g, x, w, b);
  for (size_t i = 0; i < ref.size(); ++i)
    ASSERT_LE(std::fabs((double)fast[i] - ref[i]), 2 * gamma * scale[i]) << "output " << i << " of " << ref.size();
}

INSTANTIATE_TEST_SUITE_P(
    Geometries, DnnlConvSweep,
    ::testing::Values(Geo{2, 3, 8, 1, {9, 7}, {3, 3}, {1, 1}, {1, 1}, {1, 1}, {1, 1}},
                      Geo{1, 16, 32, 1, {14, 14}, {3, 3}, {2, 2}, {1, 1}, {1, 0}, {0, 1}},    // asymmetric pads
                      Geo{3, 32, 32, 32, {10, 10}, {3, 3}, {1, 1}, {1, 1}, {1, 1}, {1, 1}},   // depthwise
                      Geo{1, 8, 16, 8, {9, 9}, {3, 3}, {2, 2}, {1, 1}, {0, 0}, {0, 0}},       // multiplier 2
                      Geo{1, 12, 18, 3, {8, 11}, {3, 1}, {1, 2}, {2, 1}, {2, 0}, {2, 0}},     // groups, dilation
                      Geo{2, 64, 96, 1, {7, 7}, {1, 1}, {1, 1}, {1, 1}, {0, 0}, {0, 0}},      // pointwise
                      Geo{1, 3, 16, 1, {33, 33}, {7, 7}, {2, 2}, {1, 1}, {3, 3}, {3, 3}},     // stem
                      Geo{2, 5, 6, 1, {20}, {5}, {2}, {3}, {4}, {1}},                         // 1-D
                      Geo{1, 4, 6, 2, {5, 6, 7}, {3, 2, 3}, {1, 2, 1}, {1, 1, 2}, {1, 0, 2}, {1, 1, 2}}),  // 3-D
    [](const ::testing::TestParamInfo<Geo>& i) { return "case" + std::to_string(i.index); });

// The Conv op through the executor keeps oneDNN's primitive and reordered weights between runs: a new weight
// tensor or a new batch size must be seen, never a stale cache.
TEST(DnnlConvCache, NewWeightsAndBatchSizesAreUsed) {
  GraphBuilder gb(13);
  gb.input("x", DType::Float32, {-1, 4, 6, 6});
  gb.input("w", DType::Float32, {5, 4, 3, 3});
  gb.output(gb.node("Conv", {"x", "w"}, {attr_ints("pads", {1, 1, 1, 1})}, 1, "conv"));
  Model m = gb.build();
  Executor ex(m);
  for (int batch : {2, 3, 2}) {
    for (uint32_t seed : {1u, 2u}) {
      Tensor x = random_tensor({batch, 4, 6, 6}, 40 + seed), w = random_tensor({5, 4, 3, 3}, 50 + seed);
      Tensor fast = ex.run({{"x", x}, {"w", w}}).begin()->second;
      Tensor ref;
      {
        ReferenceKernels off;
        ref = ex.run({{"x", x}, {"w", w}}).begin()->second;
      }
      ASSERT_EQ(fast.shape(), ref.shape());
      double worst = 0;
      for (int64_t i = 0; i < ref.numel(); ++i)
        worst = std::max(worst, (double)std::fabs(fast.data<float>()[i] - ref.data<float>()[i]));
      // |x|, |w| < 1 and 36 taps: the rounding bound is ~36 * 2 * 36 * 2^-24 ~ 1.6e-4; a stale weight or batch
      // gives differences of order 1.
      EXPECT_LT(worst, 2 * 37 * 37 * std::ldexp(1.0, -24)) << "batch " << batch << " seed " << seed;
    }
  }
}

struct PoolCase {
  Geo g;
  bool ceil_mode;
};
void PrintTo(const PoolCase& p, std::ostream* os) {
  PrintTo(p.g, os);
  *os << (p.ceil_mode ? " ceil" : "");
}
class PoolFastPath : public ::testing::TestWithParam<PoolCase> {};

// The 2-D pooling path visits taps in the reference's order: the same bits, NaN included.
TEST_P(PoolFastPath, SameBitsAsTheGenericLoops) {
  ConvGeom g = make_geom(GetParam().g, GetParam().ceil_mode);
  Tensor x = random_tensor({g.batch, g.in_ch, g.in[0], g.in[1]}, 21, -4.f, 4.f);
  float* px = x.data<float>();
  px[5] = std::numeric_limits<float>::quiet_NaN();   // channel 0 holds a NaN (the per-window path)
  px[x.numel() - 3] = -std::numeric_limits<float>::infinity();
  int64_t ny = g.batch * g.in_ch * g.out_size();
  for (int kind = 0; kind < 3; ++kind) {
    std::vector<float> fast((size_t)ny, 7.f), ref((size_t)ny, -7.f);
    auto run = [&](std::vector<float>& y) {
      if (kind == 0) max_pool_f32(g, px, y.data(), nullptr, 0);
      else avg_pool_f32(g, px, y.data(), kind == 2);
    };
    run(fast);
    {
      ReferenceKernels off;
      run(ref);
    }
    for (int64_t i = 0; i < ny; ++i) {
      bool same = std::memcmp(&fast[(size_t)i], &ref[(size_t)i], sizeof(float)) == 0;
      ASSERT_TRUE(same) << "kind " << kind << " output " << i << ": " << fast[(size_t)i] << " vs " << ref[(size_t)i];
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Geometries, PoolFastPath,
    ::testing::Values(PoolCase{{1, 3, 3, 1, {7, 7}, {3, 3}, {1, 1}, {1, 1}, {1, 1}, {1, 1}}, false},
                      PoolCase{{2, 2, 2, 1, {8, 9}, {2, 2}, {2, 2}, {1, 1}, {0, 0}, {0, 0}}, false},
                      PoolCase{{1, 2, 2, 1, {9, 10}, {3, 2}, {2, 3}, {1, 1}, {1, 0}, {0, 1}}, true},   // ceil overhang
                      PoolCase{{1, 2, 2, 1, {11, 12}, {3, 3}, {1, 2}, {2, 3}, {2, 1}, {2, 3}}, false}, // dilated
                      PoolCase{{1, 1, 1, 1, {2, 3}, {5, 5}, {1, 1}, {1, 1}, {2, 2}, {2, 2}}, false}),  // window > image
    [](const ::testing::TestParamInfo<PoolCase>& i) { return "case" + std::to_string(i.index); });

// Clip and Pow's float32 shortcuts against their general paths, bit for bit, over special values too.
TEST(ElementwiseFastPaths, ClipAndPowSameBits) {
  Tensor x = random_tensor({1000}, 31, -1e3f, 1e3f);
  float specials[] = {0.f, -0.f, INFINITY, -INFINITY, NAN, 1e-40f, -1e-40f, 3.4e38f, 6.f, 5.9999995f};
  for (size_t i = 0; i < std::size(specials); ++i) x.data<float>()[i] = specials[i];
  auto run = [&](const Node& n, const std::vector<Tensor>& ins, bool fast) {
    set_fast_kernels(fast);
    Tensor y = eval_node(n, 13, ins)[0];
    set_fast_kernels(true);
    return y;
  };
  Node clip;
  clip.op_type = "Clip";
  clip.outputs = {"y"};
  Node pw;
  pw.op_type = "Pow";
  pw.outputs = {"y"};
  std::vector<std::vector<Tensor>> cases = {
      {x, Tensor::scalar<float>(0.f), Tensor::scalar<float>(6.f)},
      {x, Tensor::scalar<float>(-INFINITY), Tensor::scalar<float>(1.5f)},
  };
  for (auto& ins : cases) EXPECT_TRUE(run(clip, ins, true).bit_equal(run(clip, ins, false)));
  for (float e : {2.f, 0.5f, 3.f, -1.f, 1.f / 3}) {  // fractional powers of negatives: NaN on both paths
    std::vector<Tensor> ins = {x, Tensor::scalar<float>(e)};
    EXPECT_TRUE(run(pw, ins, true).bit_equal(run(pw, ins, false))) << "exponent " << e;
  }
}

// ReduceSum/ReduceMean over trailing axes (the row path) against the generic loops: the same bits, NaN and
// infinities included. Other axis sets take the generic path on both sides.
TEST(ElementwiseFastPaths, TrailingReductionsSameBits) {
  Tensor x = random_tensor({3, 5, 7, 11}, 37, -1e3f, 1e3f);
  float specials[] = {NAN, INFINITY, -INFINITY, 1e-40f, 3.4e38f, 3.4e38f};
  for (size_t i = 0; i < std::size(specials); ++i) x.data<float>()[i * 97] = specials[i];
  for (const char* op : {"ReduceSum", "ReduceMean"})
    for (auto axes : std::vector<std::vector<int64_t>>{{-1}, {2, 3}, {1, 2, 3}, {}, {1}, {0, 3}})
      for (int64_t keep : {0, 1}) {
        Node n;
        n.op_type = op;
        n.outputs = {"y"};
        n.attrs = {attr_int("keepdims", keep)};
        if (!axes.empty()) n.attrs.push_back(attr_ints("axes", axes));
        set_fast_kernels(false);
        Tensor ref = eval_node(n, 11, {x})[0];
        set_fast_kernels(true);
        Tensor fast = eval_node(n, 11, {x})[0];
        EXPECT_TRUE(fast.bit_equal(ref)) << op << " over " << axes.size() << " axes, keepdims " << keep;
        EXPECT_EQ(fast.shape(), ref.shape());
      }
}

TEST(StoragePool, BlocksAreReusedAndTheLimitHolds) {
  storage_cache_clear();
  set_storage_cache_limit(1 << 20);
  void* a = storage_allocate(300 * 1024);
  storage_release(a, 300 * 1024);
  EXPECT_EQ(storage_cached_bytes(), 300 * 1024);
  void* b = storage_allocate(300 * 1024 - 100);  // same 4 KiB-rounded size: the cached block
  EXPECT_EQ(a, b);
  EXPECT_EQ(storage_cached_bytes(), 0);
  void* c = storage_allocate(900 * 1024);
  storage_release(b, 300 * 1024 - 100);
  storage_release(c, 900 * 1024);  // would take the cache past 1 MiB: freed instead
  EXPECT_EQ(storage_cached_bytes(), 300 * 1024);
  set_storage_cache_limit(-1);
  storage_cache_clear();
  EXPECT_EQ(storage_cached_bytes(), 0);
}

}  // namespace

namespace {
// Distance in units in the last place between two finite floats of the same sign class (ordered bit patterns).
int64_t ulp_distance(float a, float b) {
  auto ordered = [](float f) {
    int32_t i;
    std::memcpy(&i, &f, 4);
    return i < 0 ? (int64_t)INT32_MIN - i : (int64_t)i;
  };
  return std::llabs(ordered(a) - ordered(b));
}

// Sweeps float bit patterns (every 9973rd, ~430k values over all signs and exponents) plus the specials.
template <typename Fast, typename Truth>
void check_within_one_ulp(Fast fast, Truth truth, const char* name) {
  std::vector<float> xs;
  for (uint64_t bits = 0; bits < (1ull << 32); bits += 9973) {
    uint32_t b = (uint32_t)bits;
    float f;
    std::memcpy(&f, &b, 4);
    xs.push_back(f);
  }
  for (float f : {0.f, -0.f, 1.f, -1.f, 88.7f, 89.f, -87.f, -103.f, -104.f, INFINITY, -INFINITY, NAN}) xs.push_back(f);
  std::vector<float> ys(xs.size());
  fast(xs.data(), ys.data(), (int64_t)xs.size());
  for (size_t i = 0; i < xs.size(); ++i) {
    float want = (float)truth((double)xs[i]);
    if (std::isnan(want)) {
      ASSERT_TRUE(std::isnan(ys[i])) << name << "(" << xs[i] << ")";
      continue;
    }
    ASSERT_LE(ulp_distance(ys[i], want), 1) << name << "(" << xs[i] << ") = " << ys[i] << ", exact " << want;
  }
}
}  // namespace

// The double-precision computation rounded once to float: within 1 ulp of the exact value, specials included.
TEST(ElementwiseFastPaths, SigmoidAndExpWithinOneUlp) {
  check_within_one_ulp(sigmoid_f32, [](double x) { return 1.0 / (1.0 + std::exp(-x)); }, "sigmoid");
  check_within_one_ulp(exp_f32, [](double x) { return std::exp(x); }, "exp");
}

// Broadcasting binary ops in merged runs against the element-by-element walk: same bits, every layout of
// broadcast (scalar, per-channel, trailing, both sides, size-1 dims, int and bool results).
TEST(ElementwiseFastPaths, BroadcastRunsSameBits) {
  std::vector<std::pair<Shape, Shape>> shapes = {
      {{2, 3, 4, 5}, {3, 1, 1}}, {{2, 3, 4, 5}, {}},         {{1}, {2, 3}},       {{2, 1, 4}, {3, 1}},
      {{4, 1, 6, 1}, {1, 5, 1, 7}}, {{7, 9}, {7, 1}},         {{1, 1}, {1, 1, 1}}, {{3, 300, 200}, {200}},
      {{2, 64, 30, 30}, {1, 64, 1, 1}}, {{5, 1, 1, 2}, {5, 3, 4, 2}}};
  uint32_t seed = 60;
  for (auto& [sa, sb] : shapes) {
    Tensor a = random_tensor(sa, seed++, -3.f, 3.f), b = random_tensor(sb, seed++, 0.5f, 3.f);
    for (const char* op : {"Add", "Sub", "Mul", "Div", "Less"}) {
      Node n;
      n.op_type = op;
      n.outputs = {"y"};
      for (auto& [x, y] : {std::pair{a, b}, std::pair{b, a}}) {
        Tensor fast = eval_node(n, 13, {x, y})[0];
        Tensor ref;
        {
          ReferenceKernels off;
          ref = eval_node(n, 13, {x, y})[0];
        }
        EXPECT_TRUE(fast.bit_equal(ref)) << op << " " << shape_str(x.shape()) << " with " << shape_str(y.shape());
      }
      Tensor ia = a.cast(DType::Int32), ib = b.cast(DType::Int32);
      if (std::string(op) != "Div") {
        Tensor fast = eval_node(n, 13, {ia, ib})[0];
        ReferenceKernels off;
        EXPECT_TRUE(fast.bit_equal(eval_node(n, 13, {ia, ib})[0])) << op << " int32";
      }
    }
  }
}

// The softmax row kernel against the reference op: both are the same expression rounded once from a more precise
// value, so they differ by at most 1 ulp; -inf entries, large magnitudes and a NaN row included.
TEST(ElementwiseFastPaths, SoftmaxWithinOneUlpOfReference) {
  for (Shape s : {Shape{7, 1}, Shape{3, 5, 17}, Shape{64, 1000}, Shape{2, 4, 1, 300}}) {
    Tensor x = random_tensor(s, 80, -30.f, 30.f);
    float* p = x.data<float>();
    p[0] = -INFINITY;
    p[x.numel() / 2] = 80.f;
    if (s[0] == 64) p[1000 * 5 + 3] = NAN;  // one NaN row: the reference rules for the whole tensor
    Node n;
    n.op_type = "Softmax";
    n.outputs = {"y"};
    Tensor fast = eval_node(n, 13, {x})[0];
    Tensor ref;
    {
      ReferenceKernels off;
      ref = eval_node(n, 13, {x})[0];
    }
    for (int64_t i = 0; i < x.numel(); ++i) {
      float f = fast.data<float>()[i], r = ref.data<float>()[i];
      if (std::isnan(r)) {
        ASSERT_TRUE(std::isnan(f)) << i;
        continue;
      }
      ASSERT_LE(ulp_distance(f, r), 1) << shape_str(s) << " element " << i << ": " << f << " vs " << r;
    }
  }
}

TEST(ChannelsLast, TensorRoundTripAndPlainAccessIsGuarded) {
  Tensor t = random_tensor({2, 3, 4, 5}, 90);
  Tensor cl = t.to_channels_last();
  ASSERT_EQ(cl.layout(), Layout::ChannelsLast);
  EXPECT_EQ(cl.shape(), t.shape());
  EXPECT_THROW(cl.raw(), Error);  // a kernel not written for the layout cannot read it by mistake
  EXPECT_THROW(cl.reshaped({6, 20}), Error);
  const float* s = static_cast<const float*>(cl.storage());
  for (int64_t n = 0; n < 2; ++n)
    for (int64_t c = 0; c < 3; ++c)
      for (int64_t h = 0; h < 4; ++h)
        for (int64_t w = 0; w < 5; ++w)
          ASSERT_EQ(s[((n * 4 + h) * 5 + w) * 3 + c], t.data<float>()[((n * 3 + c) * 4 + h) * 5 + w]);
  EXPECT_TRUE(cl.to_plain().bit_equal(t));
}

namespace {
// Conv -> Relu -> depthwise Conv -> BatchNorm -> Clip(0, 6) -> 1x1 Conv -> Add(residual) -> Mul(per channel)
// -> Sigmoid -> GlobalAveragePool, plus a MaxPool of the Sigmoid output (a reader that needs the plain layout).
Model layout_chain() {
  GraphBuilder b(13);
  b.input("x", DType::Float32, {-1, 3, 10, 10});
  b.initializer("w1", random_tensor({8, 3, 3, 3}, 91));
  b.initializer("b1", random_tensor({8}, 92));
  b.initializer("w2", random_tensor({8, 1, 3, 3}, 93));
  b.initializer("w3", random_tensor({8, 8, 1, 1}, 94));
  b.initializer("sc", random_tensor({8}, 95, 0.5f, 1.5f));
  b.initializer("bi", random_tensor({8}, 96));
  b.initializer("mu", random_tensor({8}, 97));
  b.initializer("var", random_tensor({8}, 98, 0.5f, 2.f));
  b.initializer("lo", Tensor::scalar<float>(0.f));
  b.initializer("hi", Tensor::scalar<float>(0.5f));
  b.initializer("k", random_tensor({1, 8, 1, 1}, 99));
  auto c1 = b.node("Conv", {"x", "w1", "b1"}, {attr_ints("pads", {1, 1, 1, 1})}, 1, "conv1");
  auto r1 = b.node("Relu", {c1}, {}, 1, "relu1");
  auto c2 = b.node("Conv", {r1, "w2"}, {attr_ints("pads", {1, 1, 1, 1}), attr_int("group", 8)}, 1, "conv2");
  auto bn = b.node("BatchNormalization", {c2, "sc", "bi", "mu", "var"}, {}, 1, "bn");
  auto cl = b.node("Clip", {bn, "lo", "hi"}, {}, 1, "clip");
  auto c3 = b.node("Conv", {cl, "w3"}, {}, 1, "conv3");
  auto c4 = b.node("Conv", {c3, "w3"}, {}, 1, "conv4");
  auto r4 = b.node("Clip", {c4, "lo", "hi"}, {}, 1, "clip4");
  auto add = b.node("Add", {r4, r1}, {}, 1, "add");
  auto mul = b.node("Mul", {add, "k"}, {}, 1, "mul");
  auto sg = b.node("Sigmoid", {mul}, {}, 1, "sig");
  b.output(b.node("GlobalAveragePool", {sg}, {}, 1, "gap"));
  b.output(b.node("MaxPool", {sg}, {attr_ints("kernel_shape", {2, 2})}, 1, "pool"));
  Model m = b.build();
  infer_value_types(m.graph);
  return m;
}
}  // namespace

// Channels-last hand-over and folded clamps change no value: a run without hooks (layouts and folding on) gives the
// same bits as a run with a hook (which turns both off: hooks see every value, plain), and fetching an inner value
// gives it as it was before its clamp.
TEST(ChannelsLast, ChainGivesTheSameBitsAsAHookedRun) {
  Model m = layout_chain();
  Executor ex(m);
  Tensor x = random_tensor({2, 3, 10, 10}, 100);
  RunStats fast_stats, hooked_stats;
  TensorMap fast = ex.run({{"x", x}}, {}, &fast_stats);
  EXPECT_EQ(fast_stats.folded_clamps, 2);  // relu1 and clip4 (clip after the BatchNorm is not a Conv's reader)
  EXPECT_GE(fast_stats.channels_last_outputs, 6);
  int64_t hooked_values = 0, not_plain = 0;
  ex.add_hook([&](const Node*, const std::string&, Tensor& v) {
    ++hooked_values;
    not_plain += v.layout() != Layout::Plain;
  });
  TensorMap hooked = ex.run({{"x", x}}, {}, &hooked_stats);
  EXPECT_EQ(hooked_stats.folded_clamps, 0);
  EXPECT_EQ(hooked_stats.channels_last_outputs, 0);
  EXPECT_EQ(not_plain, 0);
  EXPECT_EQ(hooked_values, 1 + 13);  // the input and every node output
  ASSERT_EQ(fast.size(), hooked.size());
  for (auto& [name, t] : fast) EXPECT_TRUE(t.bit_equal(hooked.at(name))) << name;
  ex.clear_hooks();
  // Fetching conv1's output keeps it unclamped (negative values survive) and leaves the result unchanged.
  TensorMap part = ex.run({{"x", x}}, {"conv1_out0", fast.begin()->first});
  float mn = 0;
  for (float v : part.at("conv1_out0").span<float>()) mn = std::min(mn, v);
  EXPECT_LT(mn, 0.f);
  EXPECT_TRUE(part.at(fast.begin()->first).bit_equal(fast.begin()->second));
}

// A hook that watches named values only: those come plain and unfolded (relu1 is not folded into conv1 when the
// hook watches conv1's output), everything else keeps the fast paths, and the results are the same bits.
TEST(ChannelsLast, HookOnNamedValuesKeepsTheRestFast) {
  Model m = layout_chain();
  Executor ex(m);
  Tensor x = random_tensor({2, 3, 10, 10}, 101);
  TensorMap all_plain;
  {
    Executor ref(m);
    ref.add_hook([](const Node*, const std::string&, Tensor&) {});
    all_plain = ref.run({{"x", x}});
  }
  Tensor seen_conv1, seen_clip4;
  int calls = 0;
  ex.add_hook(
      [&](const Node* p, const std::string& name, Tensor& v) {
        ++calls;
        EXPECT_EQ(v.layout(), Layout::Plain);
        if (name == "conv1_out0") seen_conv1 = v;
        if (name == "clip4_out0") {
          seen_clip4 = v;
          EXPECT_EQ(p->name, "clip4");
        }
      },
      {"conv1_out0", "clip4_out0"});
  RunStats st;
  TensorMap out = ex.run({{"x", x}}, {}, &st);
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(st.folded_clamps, 1);  // clip4 into conv4 (it watches the Clip's output, not conv4's)
  EXPECT_GE(st.channels_last_outputs, 3);
  float mn = 0;
  for (float v : seen_conv1.span<float>()) mn = std::min(mn, v);
  EXPECT_LT(mn, 0.f);  // conv1's own output, before the Relu
  for (float v : seen_clip4.span<float>()) ASSERT_TRUE(v >= 0.f && v <= 0.5f);
  for (auto& [name, t] : out) EXPECT_TRUE(t.bit_equal(all_plain.at(name))) << name;
}

// The lane-wise min/max against a plain loop: same values for every length around the lane count, and
// non-finite values reported wherever they sit (body or tail).
TEST(ElementwiseFastPaths, MinMaxMatchesAPlainLoop) {
  Tensor x = random_tensor({1000}, 110, -50.f, 50.f);
  const float* p = x.data<float>();
  for (int64_t n : {0, 1, 15, 16, 17, 31, 33, 1000}) {
    float lo, hi;
    ASSERT_TRUE(minmax_f32(p, n, lo, hi));
    float rl = INFINITY, rh = -INFINITY;
    for (int64_t i = 0; i < n; ++i) rl = std::min(rl, p[i]), rh = std::max(rh, p[i]);
    EXPECT_EQ(lo, rl) << n;
    EXPECT_EQ(hi, rh) << n;
  }
  for (int64_t at : {0, 7, 16, 998}) {
    for (float bad : {NAN, INFINITY, -INFINITY}) {
      Tensor y = x.clone();
      y.data<float>()[at] = bad;
      float lo, hi;
      EXPECT_FALSE(minmax_f32(y.data<float>(), 1000, lo, hi)) << at << " " << bad;
    }
  }
}

// Resize (nearest and linear, every axis, extrapolation of tf_crop_and_resize) in memory order: the same bits as the
// reference loop.
TEST(ElementwiseFastPaths, ResizeSameBits) {
  Tensor x = random_tensor({2, 3, 5, 7}, 120);
  struct Case {
    const char* mode;
    const char* ctm;
    const char* nearest;
    std::vector<float> scales;
  };
  std::vector<Case> cases = {{"nearest", "asymmetric", "floor", {1, 1, 2, 2}},
                             {"nearest", "half_pixel", "round_prefer_ceil", {1, 1, 1.5f, 0.6f}},
                             {"linear", "half_pixel", "", {1, 2, 2.5f, 1.75f}},
                             {"linear", "align_corners", "", {1, 1, 0.5f, 3}},
                             {"linear", "tf_crop_and_resize", "", {1, 1, 2, 2}}};
  for (auto& k : cases) {
    Node n;
    n.op_type = "Resize";
    n.outputs = {"y"};
    n.attrs = {attr_string("mode", k.mode), attr_string("coordinate_transformation_mode", k.ctm)};
    if (*k.nearest) n.attrs.push_back(attr_string("nearest_mode", k.nearest));
    Tensor roi = std::string(k.ctm) == "tf_crop_and_resize"
                     ? Tensor::from_vector<float>({8}, {0, 0, -0.2f, 0.1f, 1, 1, 1.3f, 0.9f})
                     : Tensor(DType::Float32, {0});
    std::vector<Tensor> ins = {x, roi, Tensor::from_vector<float>({4}, k.scales)};
    Tensor fast = eval_node(n, 13, ins)[0];
    ReferenceKernels off;
    EXPECT_TRUE(fast.bit_equal(eval_node(n, 13, ins)[0])) << k.mode << " " << k.ctm;
  }
}
