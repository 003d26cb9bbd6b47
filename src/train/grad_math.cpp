// Gradient rules of element-wise math, matrix products, reductions and softmax.
#include <cmath>

#include "kernels/broadcast.h"
#include "kernels/gelu.h"
#include "kernels/gemm.h"
#include "runtime/executor.h"
#include "runtime/op_util.h"
#include "train/grad.h"

namespace lowbit::train {

namespace {

using Grads = std::vector<Tensor>;

// y[i] = f(a, b) over the broadcast of a and b to `out` (float32).
template <typename F>
Tensor bcast(const Tensor& a, const Tensor& b, const Shape& out, F f) {
  Tensor y = Tensor::uninitialized(DType::Float32, out);
  const float* pa = a.data<float>();
  const float* pb = b.data<float>();
  float* py = y.data<float>();
  broadcast_runs(out, a.shape(), b.shape(), [&](int64_t o, int64_t oa, int64_t ob, int64_t len, int64_t sa, int64_t sb) {
    for (int64_t j = 0; j < len; ++j) py[o + j] = f(pa[oa + j * sa], pb[ob + j * sb]);
  });
  return y;
}
// y[i] = f(a[i], b[i]) for tensors of one shape.
template <typename F>
Tensor zip(const Tensor& a, const Tensor& b, F f) {
  check(a.shape() == b.shape(), "gradient rule: shapes differ");
  Tensor y = Tensor::uninitialized(DType::Float32, a.shape());
  const float* pa = a.data<float>();
  const float* pb = b.data<float>();
  float* py = y.data<float>();
  const int64_t n = y.numel();
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) py[i] = f(pa[i], pb[i]);
  return y;
}
// y[i] = f(a[i], b[i], c[i]) for tensors of one shape.
template <typename F>
Tensor zip3(const Tensor& a, const Tensor& b, const Tensor& c, F f) {
  check(a.shape() == b.shape() && a.shape() == c.shape(), "gradient rule: shapes differ");
  Tensor y = Tensor::uninitialized(DType::Float32, a.shape());
  const float* pa = a.data<float>();
  const float* pb = b.data<float>();
  const float* pc = c.data<float>();
  float* py = y.data<float>();
  const int64_t n = y.numel();
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) py[i] = f(pa[i], pb[i], pc[i]);
  return y;
}

void check_float(const GradContext& c, size_t i) {
  check(c.in(i).dtype() == DType::Float32, c.where(), ": gradients need float32, input ", i, " is ",
        dtype_name(c.in(i).dtype()));
}

Grads g_Add(const GradContext& c) {
  Tensor g = c.gout(0);
  return {c.wants(0) ? reduce_to_shape(g, c.in(0).shape()) : Tensor(),
          c.wants(1) ? reduce_to_shape(g, c.in(1).shape()) : Tensor()};
}
Grads g_Sub(const GradContext& c) {
  Tensor g = c.gout(0);
  Grads r(2);
  if (c.wants(0)) r[0] = reduce_to_shape(g, c.in(0).shape());
  if (c.wants(1)) {
    Tensor n = zip(g, g, [](float a, float) { return -a; });
    r[1] = reduce_to_shape(n, c.in(1).shape());
  }
  return r;
}
Grads g_Mul(const GradContext& c) {
  Tensor g = c.gout(0);
  Grads r(2);
  check_float(c, 0), check_float(c, 1);
  if (c.wants(0)) r[0] = reduce_to_shape(bcast(g, c.in(1), g.shape(), [](float a, float b) { return a * b; }), c.in(0).shape());
  if (c.wants(1)) r[1] = reduce_to_shape(bcast(g, c.in(0), g.shape(), [](float a, float b) { return a * b; }), c.in(1).shape());
  return r;
}
Grads g_Div(const GradContext& c) {
  Tensor g = c.gout(0);
  Grads r(2);
  check_float(c, 0), check_float(c, 1);
  if (c.wants(0)) r[0] = reduce_to_shape(bcast(g, c.in(1), g.shape(), [](float a, float b) { return a / b; }), c.in(0).shape());
  if (c.wants(1)) {
    // d(a/b)/db = -y / b
    Tensor gy = zip(g, c.outs[0], [](float a, float y) { return -a * y; });
    r[1] = reduce_to_shape(bcast(gy, c.in(1), g.shape(), [](float a, float b) { return a / b; }), c.in(1).shape());
  }
  return r;
}
Grads g_Pow(const GradContext& c) {
  // Exponent gradients are not taken (exponents are constants in the models lowbit trains).
  Tensor g = c.gout(0);
  check_float(c, 0);
  Tensor e = c.in(1).cast(DType::Float32);
  Grads r(2);
  if (c.wants(0) && e.numel() == 1 && c.in(0).shape() == g.shape()) {  // one exponent (x^2 in LayerNorms): no broadcast
    const float p = e.data<float>()[0];
    r[0] = p == 2.f ? zip(g, c.in(0), [](float a, float x) { return a * (2.f * x); })
                    : zip(g, c.in(0), [p](float a, float x) { return a * (p * std::pow(x, p - 1)); });
  } else if (c.wants(0)) {
    Tensor d = bcast(c.in(0), e, g.shape(), [](float x, float p) { return p * std::pow(x, p - 1); });
    r[0] = reduce_to_shape(zip(g, d, [](float a, float b) { return a * b; }), c.in(0).shape());
  }
  return r;
}

// Unary rules: dy/dx from x and y.
template <float (*D)(float x, float y)>
Grads unary(const GradContext& c) {
  Grads r(c.ins.size());
  if (!c.wants(0)) return r;
  check_float(c, 0);
  r[0] = zip3(c.gout(0), c.in(0), c.outs[0], [](float g, float x, float y) { return g * D(x, y); });
  return r;
}
float d_relu(float x, float) { return x > 0 ? 1.f : 0.f; }
float d_sigmoid(float, float y) { return y * (1 - y); }
float d_tanh(float, float y) { return 1 - y * y; }
float d_exp(float, float y) { return y; }
float d_log(float x, float) { return 1 / x; }
float d_sqrt(float, float y) { return 0.5f / y; }
float d_neg(float, float) { return -1.f; }
float d_erf(float x, float) { return (float)(2.0 / std::sqrt(M_PI) * std::exp(-(double)x * x)); }
// Gelu: the derivative of kernels/gelu.h (exact or tanh form), in double.
Grads g_Gelu(const GradContext& c) {
  Grads r(c.ins.size());
  if (!c.wants(0)) return r;
  check_float(c, 0);
  const bool tanh_form = c.node.attr_string("approximate", "none") == "tanh";
  r[0] = zip(c.gout(0), c.in(0), [tanh_form](float g, float x) { return (float)(g * gelu_derivative(x, tanh_form)); });
  return r;
}
Grads g_Clip(const GradContext& c) {
  Grads r(c.ins.size());
  if (!c.wants(0)) return r;
  check_float(c, 0);
  float lo = -INFINITY, hi = INFINITY;
  if (c.opset < 11) {
    lo = c.node.attr_float("min", -INFINITY), hi = c.node.attr_float("max", INFINITY);
  } else {
    if (c.has(1)) lo = (float)c.in(1).to_f64().at(0);
    if (c.has(2)) hi = (float)c.in(2).to_f64().at(0);
  }
  Tensor g = c.gout(0);
  r[0] = zip(g, c.in(0), [lo, hi](float a, float x) { return x > lo && x < hi ? a : 0.f; });
  return r;
}

Tensor transpose_last2(const Tensor& t) {
  if (t.rank() < 2) return t;
  std::vector<int64_t> perm(t.rank());
  for (int i = 0; i < t.rank(); ++i) perm[i] = i;
  std::swap(perm[t.rank() - 1], perm[t.rank() - 2]);
  return transposed(t, perm);
}

Grads g_MatMul(const GradContext& c) {
  check_float(c, 0), check_float(c, 1);
  Tensor A = c.in(0), B = c.in(1), g = c.gout(0);
  Shape sa = A.shape(), sb = B.shape();
  // Rank-1 operands as matrices: a [K] as [1, K], b [K] as [K, 1]; g gets the dims they dropped back.
  Shape ga = sa, gb = sb;
  if (A.rank() == 1) A = A.reshaped({1, sa[0]});
  if (B.rank() == 1) B = B.reshaped({sb[0], 1});
  Shape gs = g.shape();
  if (sa.size() == 1) gs.insert(gs.end() - (sb.size() == 1 ? 0 : 1), 1);
  if (sb.size() == 1) gs.push_back(1);
  g = g.reshaped(gs);
  Grads r(2);
  if (c.wants(0)) r[0] = reduce_to_shape(matmul(g, transpose_last2(B), c.where()), A.shape()).reshaped(ga);
  if (c.wants(1) && sb.size() == 2 && A.rank() >= 2) {
    // A weight shared by every batch (x[B, T, D] times W[D, E]): dW = x^T g over all B * T rows as one GEMM, rather
    // than B products summed afterwards.
    const int64_t K = A.dim(A.rank() - 1), N = sb[1], rows = A.numel() / K;
    Tensor d = Tensor::uninitialized(DType::Float32, sb);
    sgemm(true, false, K, N, rows, 1.f, A.data<float>(), K, g.data<float>(), N, 0.f, d.data<float>(), N);
    r[1] = d;
  } else if (c.wants(1)) {
    r[1] = reduce_to_shape(matmul(transpose_last2(A), g, c.where()), B.shape()).reshaped(gb);
  }
  return r;
}

Grads g_Gemm(const GradContext& c) {
  check_float(c, 0), check_float(c, 1);
  bool ta = c.node.attr_int("transA", 0) != 0, tb = c.node.attr_int("transB", 0) != 0;
  float alpha = c.node.attr_float("alpha", 1.f), beta = c.node.attr_float("beta", 1.f);
  Tensor A = ta ? transpose_last2(c.in(0)) : c.in(0);
  Tensor B = tb ? transpose_last2(c.in(1)) : c.in(1);
  Tensor g = c.gout(0);
  auto scaled = [](Tensor t, float s) {
    if (s == 1.f) return t;
    float* p = t.data<float>();
    for (int64_t i = 0; i < t.numel(); ++i) p[i] *= s;
    return t;
  };
  Grads r(c.ins.size());
  if (c.wants(0)) {  // dA' = g B'^T
    Tensor d = scaled(matmul(g, transpose_last2(B), c.where()), alpha);
    r[0] = ta ? transpose_last2(d) : d;
  }
  if (c.wants(1)) {  // dB' = A'^T g
    Tensor d = scaled(matmul(transpose_last2(A), g, c.where()), alpha);
    r[1] = tb ? transpose_last2(d) : d;
  }
  if (c.has(2) && c.wants(2)) r[2] = reduce_to_shape(scaled(g.clone(), beta), c.in(2).shape());
  return r;
}

// Reduced axes of a ReduceMean/ReduceSum node (attribute before opset 18, input 1 from 18 on for ReduceMean, 13
// for ReduceSum), normalised; empty = all axes unless noop_with_empty_axes.
std::vector<int64_t> reduce_axes(const GradContext& c, int64_t input_from) {
  std::vector<int64_t> axes;
  if (c.opset >= input_from) {
    if (c.has(1)) axes = c.in(1).to_i64();
  } else {
    axes = c.node.attr_ints("axes");
  }
  int64_t r = c.in(0).rank();
  if (axes.empty()) {
    if (c.node.attr_int("noop_with_empty_axes", 0)) return {};
    for (int64_t d = 0; d < r; ++d) axes.push_back(d);
  }
  for (auto& a : axes) {
    check(a >= -r && a < r, c.where(), ": axis ", a, " out of range");
    if (a < 0) a += r;
  }
  return axes;
}

Grads reduce_rule(const GradContext& c, int64_t input_from, bool mean) {
  Grads r(c.ins.size());
  if (!c.wants(0)) return r;
  check_float(c, 0);
  auto axes = reduce_axes(c, input_from);
  Shape xs = c.in(0).shape(), kept = xs;
  int64_t count = 1;
  for (auto a : axes) kept[a] = 1, count *= xs[a];
  Tensor g = c.gout(0).reshaped(kept);
  float k = mean && count > 0 ? 1.f / (float)count : 1.f;
  r[0] = bcast(g, Tensor::scalar<float>(k), xs, [](float a, float s) { return a * s; });
  // bcast over xs broadcasts g along the reduced axes.
  return r;
}
Grads g_ReduceMean(const GradContext& c) { return reduce_rule(c, 18, true); }
Grads g_ReduceSum(const GradContext& c) { return reduce_rule(c, 13, false); }

// Softmax / LogSoftmax along one axis (opset >= 13), or over the flattened trailing dims [axis, rank) before.
void softmax_dims(const GradContext& c, int64_t& outer, int64_t& n, int64_t& inner) {
  const Shape& s = c.in(0).shape();
  int64_t r = (int64_t)s.size();
  int64_t axis = c.node.attr_int("axis", c.opset >= 13 ? -1 : 1);
  check(axis >= -r && axis < r, c.where(), ": axis out of range");
  if (axis < 0) axis += r;
  if (c.opset >= 13) return split_dims(s, axis, outer, n, inner);
  outer = 1, n = 1, inner = 1;
  for (int64_t d = 0; d < axis; ++d) outer *= s[d];
  for (int64_t d = axis; d < r; ++d) n *= s[d];
}
Grads softmax_rule(const GradContext& c, bool log) {
  Grads r(c.ins.size());
  if (!c.wants(0)) return r;
  int64_t outer, n, inner;
  softmax_dims(c, outer, n, inner);
  Tensor g = c.gout(0);
  const float* pg = g.data<float>();
  const float* py = c.outs[0].data<float>();
  Tensor gx = Tensor::uninitialized(DType::Float32, g.shape());
  float* px = gx.data<float>();
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      int64_t base = o * n * inner + i;
      double dot = 0;
      for (int64_t k = 0; k < n; ++k) dot += log ? pg[base + k * inner] : (double)pg[base + k * inner] * py[base + k * inner];
      for (int64_t k = 0; k < n; ++k) {
        int64_t j = base + k * inner;
        px[j] = log ? (float)(pg[j] - std::exp((double)py[j]) * dot) : (float)(py[j] * (pg[j] - dot));
      }
    }
  r[0] = gx;
  return r;
}
Grads g_Softmax(const GradContext& c) { return softmax_rule(c, false); }
Grads g_LogSoftmax(const GradContext& c) { return softmax_rule(c, true); }

}  // namespace

void add_math_rules(GradTable& t) {
  t.add("Add", g_Add);
  t.add("Sub", g_Sub);
  t.add("Mul", g_Mul);
  t.add("Div", g_Div);
  t.add("Pow", g_Pow);
  t.add("Gelu", g_Gelu);
  t.add("Relu", unary<d_relu>);
  t.add("Sigmoid", unary<d_sigmoid>);
  t.add("Tanh", unary<d_tanh>);
  t.add("Exp", unary<d_exp>);
  t.add("Log", unary<d_log>);
  t.add("Sqrt", unary<d_sqrt>);
  t.add("Neg", unary<d_neg>);
  t.add("Erf", unary<d_erf>);
  t.add("Clip", g_Clip);
  t.add("MatMul", g_MatMul);
  t.add("Gemm", g_Gemm);
  t.add("ReduceMean", g_ReduceMean);
  t.add("ReduceSum", g_ReduceSum);
  t.add("Softmax", g_Softmax);
  t.add("LogSoftmax", g_LogSoftmax);
}

}  // namespace lowbit::train
