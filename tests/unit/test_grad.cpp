// Every gradient rule (train/grad.h) against central finite differences, by one generic tester.
//
// The tester evaluates L(x) = sum_k <r_k, f_k(x)> (fixed random cotangents r_k, accumulated in double) with the op's
// own float32 kernel, and compares dL/dx_j from the rule with the Richardson-extrapolated central difference
// (4 D(h/2) - D(h)) / 3 at h = 2^-6 * max(2^-3, |x_j|). Error budget: truncation O(h^4) relative to the fifth
// derivative's scale (below 1e-6 for these inputs); rounding: each loss carries at most ~eps32 * sum|r||y| of error,
// amplified 1/h by the difference (and 5/3 by the extrapolation). The check allows
// 2e-3 * (|g_j| + rms(g)) + 4 * eps32 * sum|r||y| / h, above both terms; a wrong factor, sign, index or missing term
// is an O(1) relative error. Inputs are drawn away from kinks (ReLU at 0, clip bounds, max ties, rounding points of
// FakeQuant), which each case states.
#include <gtest/gtest.h>

#include <omp.h>

#include <cmath>
#include <random>

#include "ir/builder.h"
#include "kernels/dispatch.h"
#include "runtime/executor.h"
#include "test_util.h"
#include "train/grad.h"

namespace lowbit {
namespace {

using testing::random_tensor;

struct Case {
  Node node;
  int64_t opset = 17;
  std::vector<Tensor> ins;
  std::vector<int> check_inputs;  // the inputs whose gradient is compared
  size_t seeded_outputs = 99;     // outputs that get a cotangent (statistics outputs of the norms get none)
};

Node make_node(const std::string& op, size_t n_in, std::vector<Attribute> attrs = {}, size_t n_out = 1,
               const std::string& domain = "") {
  Node n;
  n.op_type = op, n.domain = domain, n.name = op;
  for (size_t i = 0; i < n_in; ++i) n.inputs.push_back("x" + std::to_string(i));
  for (size_t i = 0; i < n_out; ++i) n.outputs.push_back("y" + std::to_string(i));
  n.attrs = std::move(attrs);
  return n;
}

// Values in [lo, hi] at least `gap` from each other (shuffled): no ties or near-ties for MaxPool.
Tensor distinct(const Shape& s, uint32_t seed, float gap = 0.05f) {
  Tensor t(DType::Float32, s);
  std::vector<float> v((size_t)t.numel());
  for (size_t i = 0; i < v.size(); ++i) v[i] = gap * (float)i - gap * (float)v.size() / 2;
  std::shuffle(v.begin(), v.end(), std::mt19937(seed));
  std::copy(v.begin(), v.end(), t.data<float>());
  return t;
}
// Uniform values with |x| >= margin (away from a kink at 0).
Tensor away_from_zero(const Shape& s, uint32_t seed, float margin = 0.1f) {
  Tensor t = random_tensor(s, seed);
  for (int64_t i = 0; i < t.numel(); ++i) {
    float& v = t.data<float>()[i];
    v = v >= 0 ? v + margin : v - margin;
  }
  return t;
}

double loss_of(const Case& c, const std::vector<Tensor>& ins, const std::vector<Tensor>& r, double* abs_sum) {
  auto outs = eval_node(c.node, c.opset, ins);
  double L = 0, A = 0;
  for (size_t k = 0; k < r.size(); ++k) {
    if (!r[k].defined()) continue;
    for (int64_t i = 0; i < r[k].numel(); ++i) {
      double p = (double)r[k].data<float>()[i] * outs[k].data<float>()[i];
      L += p, A += std::fabs(p);
    }
  }
  if (abs_sum) *abs_sum = A;
  return L;
}

void check_case(const Case& c, const std::string& label) {
  SCOPED_TRACE(label);
  auto outs = eval_node(c.node, c.opset, c.ins);
  std::vector<Tensor> r(outs.size());
  for (size_t k = 0; k < outs.size() && k < c.seeded_outputs; ++k)
    if (outs[k].dtype() == DType::Float32) r[k] = random_tensor(outs[k].shape(), 1000 + (uint32_t)k);
  auto rule = train::find_grad_rule(c.node.domain, c.node.op_type);
  ASSERT_NE(rule, nullptr);
  std::vector<const Tensor*> ins;
  for (auto& t : c.ins) ins.push_back(t.defined() ? &t : nullptr);
  std::vector<char> need(c.ins.size(), 0);
  for (int i : c.check_inputs) need[(size_t)i] = 1;
  train::GradContext ctx{c.node, c.opset, ins, outs, r, need};
  auto g = rule(ctx);
  double abs_sum = 0;
  loss_of(c, c.ins, r, &abs_sum);
  const double eps32 = std::ldexp(1.0, -24);
  for (int i : c.check_inputs) {
    ASSERT_TRUE(g.at((size_t)i).defined()) << "no gradient for input " << i;
    ASSERT_EQ(g[(size_t)i].shape(), c.ins[(size_t)i].shape());
    const float* pg = g[(size_t)i].data<float>();
    int64_t n = c.ins[(size_t)i].numel();
    double rms = 0;
    for (int64_t j = 0; j < n; ++j) rms += (double)pg[j] * pg[j];
    rms = std::sqrt(rms / std::max<int64_t>(n, 1));
    // Up to 40 elements, spread over the tensor.
    int64_t step = std::max<int64_t>(1, n / 40);
    for (int64_t j = 0; j < n; j += step) {
      float x0 = c.ins[(size_t)i].data<float>()[j];
      auto D = [&](float h) {
        auto plus = c.ins, minus = c.ins;
        plus[(size_t)i] = plus[(size_t)i].clone(), minus[(size_t)i] = minus[(size_t)i].clone();
        plus[(size_t)i].data<float>()[j] = x0 + h;
        minus[(size_t)i].data<float>()[j] = x0 - h;
        double hp = (double)(x0 + h) - x0, hm = (double)x0 - (double)(x0 - h);  // the steps actually taken
        return (loss_of(c, plus, r, nullptr) - loss_of(c, minus, r, nullptr)) / (hp + hm);
      };
      float h = std::ldexp(1.f, -6) * std::max(std::ldexp(1.f, -3), std::fabs(x0));
      double fd = (4 * D(h / 2) - D(h)) / 3;
      double tol = 2e-3 * (std::fabs(pg[j]) + rms) + 4 * eps32 * abs_sum / h;
      EXPECT_NEAR(pg[j], fd, tol) << "input " << i << " element " << j;
    }
  }
}

Attribute ints(const char* n, std::vector<int64_t> v) { return attr_ints(n, std::move(v)); }

TEST(GradRules, ElementwiseWithBroadcasting) {
  for (const char* op : {"Add", "Sub", "Mul", "Div"}) {
    Case c{make_node(op, 2), 17, {random_tensor({2, 3, 4}, 1), random_tensor({3, 1}, 2, 0.5f, 2.f)}, {0, 1}};
    check_case(c, op);
  }
  Case p{make_node("Pow", 2), 17, {random_tensor({3, 4}, 3, 0.5f, 2.f), Tensor::scalar<float>(2.f)}, {0}};
  check_case(p, "Pow");
}

TEST(GradRules, Unary) {
  for (const char* op : {"Sigmoid", "Tanh", "Exp", "Erf", "Neg", "Gelu"})
    check_case({make_node(op, 1), 20, {random_tensor({2, 5}, 4, -2.f, 2.f)}, {0}}, op);
  check_case({make_node("Gelu", 1, {attr_string("approximate", "tanh")}), 20, {random_tensor({2, 5}, 9, -3.f, 3.f)}, {0}},
             "Gelu tanh");
  check_case({make_node("Relu", 1), 17, {away_from_zero({2, 5}, 5)}, {0}}, "Relu");
  check_case({make_node("Log", 1), 17, {random_tensor({7}, 6, 0.5f, 3.f)}, {0}}, "Log");
  check_case({make_node("Sqrt", 1), 17, {random_tensor({7}, 7, 0.5f, 3.f)}, {0}}, "Sqrt");
  // Clip: values kept 0.1 from the bounds +-0.5.
  Tensor x = away_from_zero({3, 4}, 8, 0.05f);
  for (int64_t i = 0; i < x.numel(); ++i) {
    float& v = x.data<float>()[i];
    if (std::fabs(std::fabs(v) - 0.5f) < 0.1f) v *= 1.5f;
  }
  check_case({make_node("Clip", 3), 13, {x, Tensor::scalar<float>(-0.5f), Tensor::scalar<float>(0.5f)}, {0}}, "Clip");
}

TEST(GradRules, MatMulAndGemm) {
  check_case({make_node("MatMul", 2), 17, {random_tensor({2, 3, 4}, 9), random_tensor({4, 5}, 10)}, {0, 1}}, "matmul 3d x 2d");
  check_case({make_node("MatMul", 2), 17, {random_tensor({2, 1, 3, 4}, 11), random_tensor({3, 4, 2}, 12)}, {0, 1}},
             "matmul batch broadcast");
  check_case({make_node("MatMul", 2), 17, {random_tensor({4}, 13), random_tensor({4, 3}, 14)}, {0, 1}}, "matmul vec");
  check_case({make_node("Gemm", 3, {attr_int("transB", 1), attr_float("alpha", 0.5f), attr_float("beta", 2.f)}), 13,
              {random_tensor({3, 4}, 15), random_tensor({5, 4}, 16), random_tensor({5}, 17)}, {0, 1, 2}}, "gemm transB");
  check_case({make_node("Gemm", 3, {attr_int("transA", 1)}), 13,
              {random_tensor({4, 3}, 18), random_tensor({4, 5}, 19), random_tensor({3, 1}, 20)}, {0, 1, 2}}, "gemm transA");
}

TEST(GradRules, ReductionsAndSoftmax) {
  check_case({make_node("ReduceMean", 1, {ints("axes", {-1})}), 13, {random_tensor({2, 3, 4}, 21)}, {0}}, "mean attr");
  check_case({make_node("ReduceMean", 2), 18,
              {random_tensor({2, 3, 4}, 22), Tensor::from_vector<int64_t>({2}, {0, 2})}, {0}}, "mean input axes");
  check_case({make_node("ReduceSum", 2, {attr_int("keepdims", 0)}), 13,
              {random_tensor({2, 3, 4}, 23), Tensor::from_vector<int64_t>({1}, {1})}, {0}}, "sum");
  check_case({make_node("Softmax", 1, {attr_int("axis", 1)}), 13, {random_tensor({2, 5, 3}, 24, -2, 2)}, {0}}, "softmax");
  check_case({make_node("LogSoftmax", 1), 13, {random_tensor({3, 6}, 25, -2, 2)}, {0}}, "logsoftmax");
  check_case({make_node("Softmax", 1, {attr_int("axis", 1)}), 11, {random_tensor({2, 3, 4}, 26, -2, 2)}, {0}},
             "softmax opset 11 (flattened)");
}

std::vector<Case> conv_cases() {
  std::vector<Case> v;
  v.push_back({make_node("Conv", 3, {ints("pads", {1, 1, 1, 1})}), 13,
               {random_tensor({2, 3, 5, 5}, 27), random_tensor({4, 3, 3, 3}, 28), random_tensor({4}, 29)}, {0, 1, 2}});
  v.push_back({make_node("Conv", 2, {ints("pads", {1, 0, 2, 1}), ints("strides", {2, 1}), ints("dilations", {1, 2})}),
               13, {random_tensor({1, 2, 7, 6}, 30), random_tensor({3, 2, 3, 2}, 31)}, {0, 1}});
  v.push_back({make_node("Conv", 2, {attr_int("group", 2)}), 13,
               {random_tensor({2, 4, 4, 4}, 32), random_tensor({6, 2, 2, 2}, 33)}, {0, 1}});
  v.push_back({make_node("Conv", 3, {attr_int("group", 3), ints("pads", {1, 1, 1, 1})}), 13,
               {random_tensor({1, 3, 4, 4}, 34), random_tensor({3, 1, 3, 3}, 35), random_tensor({3}, 36)}, {0, 1, 2}});
  v.push_back({make_node("Conv", 2, {ints("pads", {1, 1})}), 13, {random_tensor({2, 2, 6}, 37), random_tensor({3, 2, 3}, 38)},
               {0, 1}});
  return v;
}

// Plain, strided + padded + dilated, grouped, depthwise, 1-D; through oneDNN's backward primitives and through the
// reference loops.
TEST(GradRules, Conv) {
  for (bool fast : {true, false}) {
    set_fast_kernels(fast);
    int k = 0;
    for (auto& c : conv_cases()) check_case(c, (fast ? "fast " : "reference ") + std::to_string(k++));
  }
  set_fast_kernels(true);
}

// ConvTranspose: strided, padded, output_padding, grouped, dilated, 1-D, and output_shape (negative begin pads).
TEST(GradRules, ConvTranspose) {
  check_case({make_node("ConvTranspose", 3, {ints("strides", {2, 2}), ints("pads", {1, 0, 0, 1}),
                                             ints("output_padding", {1, 0})}), 13,
              {random_tensor({2, 3, 3, 4}, 62), random_tensor({3, 2, 3, 3}, 63), random_tensor({2}, 64)}, {0, 1, 2}},
             "strided padded");
  check_case({make_node("ConvTranspose", 2, {attr_int("group", 2), ints("dilations", {2, 1})}), 13,
              {random_tensor({1, 4, 3, 3}, 65), random_tensor({4, 3, 2, 2}, 66)}, {0, 1}}, "grouped dilated");
  check_case({make_node("ConvTranspose", 2, {ints("strides", {3})}), 13,
              {random_tensor({2, 2, 4}, 67), random_tensor({2, 3, 2}, 68)}, {0, 1}}, "1-d");
  check_case({make_node("ConvTranspose", 2, {ints("strides", {2, 2}), ints("output_shape", {8, 7})}), 13,
              {random_tensor({1, 2, 3, 3}, 69), random_tensor({2, 2, 3, 3}, 70)}, {0, 1}}, "output_shape");
}

// The fast conv gradients against the reference loops within the float bound of a K-term sum: each gradient element
// sums K products, so both are within K * eps32 * sum|terms| of the exact value, and sum|terms| is the reference
// rule applied to |x|, |w|, |gy|.
TEST(GradRules, ConvFastPathMatchesReference) {
  const double eps32 = std::ldexp(1.0, -24);
  for (auto c : conv_cases()) {
    c.ins[0] = random_tensor(c.ins[0].shape(), 60);
    auto outs = eval_node(c.node, c.opset, c.ins);
    std::vector<Tensor> gy{random_tensor(outs[0].shape(), 61)};
    std::vector<char> need(c.ins.size(), 1);
    auto rule = train::find_grad_rule("", "Conv");
    auto grads = [&](const std::vector<Tensor>& ins, const std::vector<Tensor>& g) {
      std::vector<const Tensor*> p;
      for (auto& t : ins) p.push_back(&t);
      return rule(train::GradContext{c.node, c.opset, p, outs, g, need});
    };
    auto abs_of = [](const Tensor& t) {
      Tensor a = t.clone();
      for (int64_t i = 0; i < a.numel(); ++i) a.data<float>()[i] = std::fabs(a.data<float>()[i]);
      return a;
    };
    set_fast_kernels(true);
    auto fast = grads(c.ins, gy);
    set_fast_kernels(false);
    auto ref = grads(c.ins, gy);
    std::vector<Tensor> abs_ins;
    for (auto& t : c.ins) abs_ins.push_back(abs_of(t));
    auto bound = grads(abs_ins, {abs_of(gy[0])});
    set_fast_kernels(true);
    int64_t K = outs[0].numel();  // no gradient element sums more terms than the output has elements
    for (size_t i = 0; i < c.ins.size(); ++i)
      for (int64_t j = 0; j < fast[i].numel(); ++j)
        ASSERT_NEAR(fast[i].data<float>()[j], ref[i].data<float>()[j], 2 * K * eps32 * bound[i].data<float>()[j] + 1e-30)
            << shape_str(c.ins[0].shape()) << " input " << i << " element " << j;
  }
}

TEST(GradRules, Pooling) {
  check_case({make_node("MaxPool", 1, {ints("kernel_shape", {2, 2}), ints("strides", {2, 2})}), 13,
              {distinct({1, 2, 4, 4}, 39)}, {0}}, "maxpool");
  check_case({make_node("MaxPool", 1, {ints("kernel_shape", {3, 3}), ints("pads", {1, 1, 1, 1}), ints("strides", {2, 2}),
                                       attr_int("ceil_mode", 1)}), 13,
              {distinct({1, 2, 6, 6}, 40)}, {0}}, "maxpool padded ceil");
  for (int include : {0, 1})
    check_case({make_node("AveragePool", 1, {ints("kernel_shape", {3, 3}), ints("pads", {1, 1, 1, 1}),
                                             ints("strides", {2, 2}), attr_int("count_include_pad", include),
                                             attr_int("ceil_mode", 1)}), 13,
                {random_tensor({1, 2, 6, 6}, 41)}, {0}}, include ? "avgpool include pad" : "avgpool");
  check_case({make_node("GlobalAveragePool", 1), 13, {random_tensor({2, 3, 3, 2}, 42)}, {0}}, "gap");
}

TEST(GradRules, Normalization) {
  check_case({make_node("LayerNormalization", 3, {attr_int("axis", -1)}), 17,
              {random_tensor({2, 3, 6}, 43), random_tensor({6}, 44), random_tensor({6}, 45)}, {0, 1, 2}, 1}, "layernorm");
  check_case({make_node("LayerNormalization", 2, {attr_int("axis", 1)}), 17,
              {random_tensor({2, 3, 4}, 46), random_tensor({3, 4}, 47)}, {0, 1}, 1}, "layernorm 2 axes");
  Tensor x = random_tensor({3, 2, 2, 2}, 48), g = random_tensor({2}, 49), b = random_tensor({2}, 50);
  Tensor m = random_tensor({2}, 51), v = random_tensor({2}, 52, 0.5f, 1.5f);
  check_case({make_node("BatchNormalization", 5), 15, {x, g, b, m, v}, {0, 1, 2}}, "batchnorm inference");
  check_case({make_node("BatchNormalization", 5, {attr_int("training_mode", 1)}, 3), 15, {x, g, b, m, v}, {0, 1, 2}, 1},
             "batchnorm training");
}

TEST(GradRules, DataMovement) {
  Tensor x = random_tensor({2, 3, 4}, 53);
  check_case({make_node("Reshape", 2), 14, {x, Tensor::from_vector<int64_t>({2}, {4, 6})}, {0}}, "reshape");
  check_case({make_node("Flatten", 1), 13, {x}, {0}}, "flatten");
  check_case({make_node("Transpose", 1, {ints("perm", {2, 0, 1})}), 13, {x}, {0}}, "transpose");
  check_case({make_node("Unsqueeze", 2), 13, {x, Tensor::from_vector<int64_t>({1}, {1})}, {0}}, "unsqueeze");
  check_case({make_node("Squeeze", 2), 13, {random_tensor({2, 1, 3}, 54), Tensor::from_vector<int64_t>({1}, {1})}, {0}},
             "squeeze");
  check_case({make_node("Slice", 5), 13,
              {x, Tensor::from_vector<int64_t>({2}, {0, 3}), Tensor::from_vector<int64_t>({2}, {2, 0}),
               Tensor::from_vector<int64_t>({2}, {1, 2}), Tensor::from_vector<int64_t>({2}, {1, -2})}, {0}}, "slice");
  check_case({make_node("Gather", 2, {attr_int("axis", 1)}), 13,
              {x, Tensor::from_vector<int64_t>({4}, {2, 0, 2, -1})}, {0}}, "gather with repeats");
  check_case({make_node("Concat", 2, {attr_int("axis", 1)}), 13, {x, random_tensor({2, 2, 4}, 55)}, {0, 1}}, "concat");
  check_case({make_node("Split", 2, {attr_int("axis", 2)}, 2), 13, {x, Tensor::from_vector<int64_t>({2}, {1, 3})}, {0}},
             "split");
  check_case({make_node("Expand", 2), 13, {random_tensor({3, 1}, 56), Tensor::from_vector<int64_t>({3}, {2, 3, 4})}, {0}},
             "expand");
  check_case({make_node("Pad", 3), 13,
              {random_tensor({2, 3}, 57), Tensor::from_vector<int64_t>({4}, {1, 0, 0, 2}), Tensor::scalar<float>(0.5f)},
              {0}}, "pad");
  check_case({make_node("Identity", 1), 13, {x}, {0}}, "identity");
  check_case({make_node("Dropout", 1), 13, {x}, {0}}, "dropout (inference)");
}

// reduce_to_shape sums over the broadcast dimensions, each output in double in increasing index order: its row
// (trailing dims reduced) and column (leading dims reduced) paths and the generic one give exactly a plain loop's
// values, for targets of every kind (large enough for the threaded paths). Catches a wrong row/column stride or
// a path that sums a dimension it should keep.
TEST(GradRules, ReduceToShapeSumsInIndexOrder) {
  const Shape gs{4, 300, 70};
  Tensor g = random_tensor(gs, 66);
  for (const Shape& t : std::vector<Shape>{{4, 300, 1}, {1, 1, 70}, {70}, {}, {1}, {4, 1, 70}, {300, 70}, {4, 1, 1},
                                           {1, 300, 1}, {300, 1}})
  {
    SCOPED_TRACE(shape_str(t));
    Shape ta(gs.size(), 1);
    std::copy(t.begin(), t.end(), ta.end() - (ptrdiff_t)t.size());
    std::vector<double> acc((size_t)shape_numel(t), 0.0);
    for (int64_t i = 0; i < g.numel(); ++i) {
      int64_t rem = i, o = 0, mul = 1;
      for (int d = (int)gs.size() - 1; d >= 0; --d) {
        int64_t id = rem % gs[(size_t)d];
        rem /= gs[(size_t)d];
        o += (ta[(size_t)d] == 1 ? 0 : id) * mul;
        mul *= ta[(size_t)d];
      }
      acc[(size_t)o] += g.data<float>()[i];
    }
    Tensor r = train::reduce_to_shape(g, t);
    ASSERT_EQ(r.shape(), t);
    for (int64_t o = 0; o < r.numel(); ++o) EXPECT_EQ(r.data<float>()[o], (float)acc[(size_t)o]) << o;
  }
}

// The direct rules of Reshape-like ops, Transpose, Gather and Concat give exactly what the generic index method gives (run
// the op on index tensors, scatter back). Catches a wrong inverse permutation, a missed repeated index, or a
// negative index not wrapped.
TEST(GradRules, DirectMoveRulesMatchTheIndexMethod) {
  Tensor x = random_tensor({2, 3, 4}, 61);
  Tensor idx2 = Tensor::from_vector<int64_t>({2, 2}, {1, -1, 1, 0});
  std::vector<Case> cases = {
      {make_node("Reshape", 2), 14, {x, Tensor::from_vector<int64_t>({2}, {4, 6})}, {0}},
      {make_node("Flatten", 1, {attr_int("axis", 2)}), 13, {x}, {0}},
      {make_node("Unsqueeze", 2), 13, {x, Tensor::from_vector<int64_t>({1}, {0})}, {0}},
      {make_node("Squeeze", 2), 13, {random_tensor({2, 1, 3}, 62), Tensor::from_vector<int64_t>({1}, {1})}, {0}},
      {make_node("Identity", 1), 13, {x}, {0}},
      {make_node("Transpose", 1, {ints("perm", {1, 2, 0})}), 13, {x}, {0}},
      {make_node("Transpose", 1), 13, {x}, {0}},
      {make_node("Gather", 2, {attr_int("axis", 1)}), 13, {x, Tensor::from_vector<int64_t>({4}, {2, 0, 2, -1})}, {0}},
      {make_node("Gather", 2), 13, {x, idx2}, {0}},
      {make_node("Gather", 2, {attr_int("axis", -1)}), 13, {x, Tensor::scalar<int64_t>(3)}, {0}},
      {make_node("Concat", 3, {attr_int("axis", 1)}), 13, {x, random_tensor({2, 1, 4}, 67), random_tensor({2, 2, 4}, 68)},
       {0, 1, 2}},
      {make_node("Concat", 2, {attr_int("axis", -1)}), 13, {x, random_tensor({2, 3, 2}, 69)}, {0, 1}},
  };
  for (auto& c : cases) {
    SCOPED_TRACE(c.node.op_type);
    auto outs = eval_node(c.node, c.opset, c.ins);
    std::vector<Tensor> r{random_tensor(outs[0].shape(), 63)};
    std::vector<const Tensor*> ins;
    for (auto& t : c.ins) ins.push_back(&t);
    std::vector<char> need(c.ins.size(), 0);
    for (int i : c.check_inputs) need[(size_t)i] = 1;
    train::GradContext ctx{c.node, c.opset, ins, outs, r, need};
    auto direct = train::find_grad_rule("", c.node.op_type)(ctx);
    auto generic = train::index_method_rule()(ctx);
    for (int i : c.check_inputs) {
      ASSERT_TRUE(direct[(size_t)i].defined()) << "input " << i;
      EXPECT_EQ(direct[(size_t)i].shape(), c.ins[(size_t)i].shape());
      EXPECT_EQ(direct[(size_t)i].to_f64(), generic[(size_t)i].to_f64()) << "input " << i;
    }
  }
}

// FakeQuant's gradient over several work items (about kFakeQuantBlock elements each): per-tensor over a long vector,
// and per-channel on the last axis (MatMul weights, rows of S channels per item). The input gradient equals a plain
// loop's element for element; the scale and zero-point gradients equal a plain double-precision sum up to the rule's
// arithmetic: each term one float product (rv - v is exact), summed in double in another order, the total rounded to
// float once (bound: eps32 * sum|terms| + n * eps64 * sum|terms| + eps32 * |total|), and they are
// bit-identical for 1 and 2 threads. Catches per-thread partial sums (thread-count dependent), an item boundary
// that drops or repeats elements, and a channel index off by one on the last-axis path.
TEST(GradRules, FakeQuantGradientBlocksAndThreads) {
  struct Setup {
    Shape shape;
    int64_t channels;  // on the last axis; 1: per-tensor
  };
  for (const Setup& su : {Setup{{3 * 16384 + 123}, 1}, Setup{{700, 100}, 100}}) {
    SCOPED_TRACE(shape_str(su.shape));
    const int64_t S = su.channels, n = shape_numel(su.shape);
    Tensor x = random_tensor(su.shape, 64);
    for (int64_t i = 0; i < n; ++i) x.data<float>()[i] *= 1.5f;
    Tensor gy = random_tensor(su.shape, 65);
    std::vector<float> sv((size_t)S), zv((size_t)S);
    for (int64_t k = 0; k < S; ++k) sv[(size_t)k] = 0.07f + 0.001f * (float)k, zv[(size_t)k] = (float)(6 + k % 3);
    Tensor s = Tensor::from_vector<float>({S}, sv), z = Tensor::from_vector<float>({S}, zv);
    Node node = make_node("FakeQuant", 3, {attr_int("qmin", 0), attr_int("qmax", 15), attr_int("axis", -1)}, 1, "lowbit");
    std::vector<Tensor> ins{x, s, z};
    auto outs = eval_node(node, 1, ins);
    std::vector<const Tensor*> p{&ins[0], &ins[1], &ins[2]};
    std::vector<Tensor> gouts{gy};
    std::vector<char> need{1, 1, 1};
    train::GradContext ctx{node, 1, p, outs, gouts, need};
    auto rule = train::find_grad_rule("lowbit", "FakeQuant");
    const int threads = omp_get_max_threads();
    omp_set_num_threads(1);
    auto g1 = rule(ctx);
    omp_set_num_threads(2);
    auto g2 = rule(ctx);
    omp_set_num_threads(threads);
    for (int i = 0; i < 3; ++i) EXPECT_EQ(g1[(size_t)i].to_f64(), g2[(size_t)i].to_f64()) << "input " << i;
    std::vector<double> ds((size_t)S), dz((size_t)S), abs_s((size_t)S), abs_z((size_t)S);
    double clipped = 0;
    for (int64_t i = 0; i < n; ++i) {
      const size_t k = (size_t)(i % S);
      float v = x.data<float>()[i] / sv[k], rv = std::nearbyint(v), q = rv + zv[k], g = gy.data<float>()[i];
      bool inside = q >= 0 && q <= 15;
      EXPECT_EQ(g1[0].data<float>()[i], inside ? g : 0.f) << i;
      double t = inside ? (double)g * (rv - v) : (double)g * ((q < 0 ? 0.f : 15.f) - zv[k]);
      ds[k] += t, abs_s[k] += std::fabs(t);
      if (!inside) dz[k] -= (double)g * sv[k], abs_z[k] += std::fabs((double)g * sv[k]), ++clipped;
    }
    const double eps32 = std::ldexp(1.0, -24), eps64 = std::ldexp(1.0, -53);
    auto bound = [&](double abs, double total) { return (eps32 + (double)n * eps64) * abs + eps32 * std::fabs(total); };
    for (int64_t k = 0; k < S; ++k) {
      EXPECT_NEAR(g1[1].data<float>()[k], ds[(size_t)k], bound(abs_s[(size_t)k], ds[(size_t)k])) << k;
      EXPECT_NEAR(g1[2].data<float>()[k], dz[(size_t)k], bound(abs_z[(size_t)k], dz[(size_t)k])) << k;
    }
    EXPECT_GT(clipped, 0);  // the data reach beyond the grid
  }
}

// FakeQuant, where finite differences apply: outside the grid the output is s * (qmin - z) or s * (qmax - z),
// smooth in s and flat in x. Inside it, the rule's dy/dx = 1 and dy/ds = round(v) - v are the straight-through and
// LSQ estimators, not derivatives (the true ones are 0 and round(v)); FakeQuantEstimators checks them exactly.
TEST(GradRules, FakeQuantClippedRegion) {
  Tensor x = Tensor::from_vector<float>({6}, {-3.f, -1.2f, -0.95f, 0.83f, 1.4f, 9.f});
  Node n = make_node("FakeQuant", 3, {attr_int("qmin", -8), attr_int("qmax", 7)}, 1, "lowbit");
  check_case({n, 1, {x, Tensor::from_vector<float>({1}, {0.1f}), Tensor::from_vector<float>({1}, {0.f})}, {0, 1}},
             "per-tensor");
  Node pc = make_node("FakeQuant", 3, {attr_int("qmin", 0), attr_int("qmax", 15), attr_int("axis", 0)}, 1, "lowbit");
  Tensor w = Tensor::from_vector<float>({2, 3}, {-0.5f, 1.93f, 2.5f, -0.4f, 0.71f, 0.9f});
  check_case({pc, 1, {w, Tensor::from_vector<float>({2}, {0.1f, 0.05f}), Tensor::from_vector<float>({2}, {2.f, 3.f})},
              {0, 1}}, "per-channel asymmetric");
}

// The zero point's gradient (straight-through through its rounding) is -s per clipped element times the output
// gradient, and nothing from elements inside the grid: checked exactly on hand-made values.
TEST(GradRules, FakeQuantEstimators) {
  Node n = make_node("FakeQuant", 3, {attr_int("qmin", 0), attr_int("qmax", 3), attr_float("grad_scale", 0.5f)}, 1,
                     "lowbit");
  Tensor x = Tensor::from_vector<float>({4}, {-1.f, 0.1f, 0.24f, 5.f}), s = Tensor::from_vector<float>({1}, {0.5f});
  Tensor z = Tensor::from_vector<float>({1}, {1.2f});  // rounds to 1: grid covers [-0.5, 1.0]
  std::vector<Tensor> ins{x, s, z};
  auto outs = eval_node(n, 1, ins);
  EXPECT_EQ(outs[0].to_f64(), (std::vector<double>{-0.5, 0.0, 0.0, 1.0}));
  Tensor gy = Tensor::from_vector<float>({4}, {1.f, 2.f, 3.f, 4.f});
  std::vector<const Tensor*> p{&ins[0], &ins[1], &ins[2]};
  std::vector<Tensor> gouts{gy};
  std::vector<char> need{1, 1, 1};
  train::GradContext ctx{n, 1, p, outs, gouts, need};
  auto g = train::find_grad_rule("lowbit", "FakeQuant")(ctx);
  EXPECT_EQ(g[0].to_f64(), (std::vector<double>{0, 2, 3, 0}));
  // ds: below: (0 - 1) * 1; inside: (round(0.2) - 0.2) * 2 and (round(0.48) - 0.48) * 3; above: (3 - 1) * 4.
  double ds = (0 - 1) * 1 + (0 - 0.2) * 2 + (0 - 0.48) * 3 + (3 - 1) * 4;
  EXPECT_NEAR(g[1].to_f64()[0], 0.5 * ds, 1e-6);
  EXPECT_NEAR(g[2].to_f64()[0], 0.5 * (-0.5 * 1 - 0.5 * 4), 1e-6);
  // PACT (inside_grad 0): the elements inside the grid no longer move the scale.
  n.set_attr(attr_int("inside_grad", 0));
  train::GradContext pact{n, 1, p, outs, gouts, need};
  auto gp = train::find_grad_rule("lowbit", "FakeQuant")(pact);
  EXPECT_NEAR(gp[1].to_f64()[0], 0.5 * ((0 - 1) * 1 + (3 - 1) * 4), 1e-6);
  EXPECT_EQ(gp[0].to_f64(), g[0].to_f64());
}

// Gelu's forward against its definition at known points (both forms); an unknown form is refused.
TEST(GradRules, GeluForward) {
  Tensor x = Tensor::from_vector<float>({4}, {-1.f, 0.f, 1.f, 2.5f});
  // x * Phi(x) and the tanh form, evaluated in double by Python's math.erf / math.tanh.
  const double exact[] = {-0.15865525393145707, 0.0, 0.8413447460685429, 2.4844758366855597};
  const double approx[] = {-0.15880800939172324, 0.0, 0.8411919906082768, 2.484915733910001};
  auto y = eval_node(make_node("Gelu", 1), 20, {x})[0];
  auto yt = eval_node(make_node("Gelu", 1, {attr_string("approximate", "tanh")}), 20, {x})[0];
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(y.data<float>()[i], (float)exact[i]) << i;
    EXPECT_EQ(yt.data<float>()[i], (float)approx[i]) << i;
  }
  EXPECT_THROW(eval_node(make_node("Gelu", 1, {attr_string("approximate", "fast")}), 20, {x}), Error);
}

// Every op type of the zoo models (after BatchNormalization folding) has a rule.
TEST(GradRules, CoverTheZoo) {
  for (const char* op : {"Conv", "ConvTranspose", "Relu", "Add", "GlobalAveragePool", "Flatten", "Gemm", "Clip", "MaxPool", "Concat",
                         "Identity", "Reshape", "Transpose", "ReduceMean", "Sub", "Pow", "Sqrt", "Div", "Mul", "Gather",
                         "MatMul", "Unsqueeze", "Softmax", "Erf", "Slice", "BatchNormalization", "LayerNormalization"})
    EXPECT_NE(train::find_grad_rule("", op), nullptr) << op;
}

}  // namespace
}  // namespace lowbit
