// Element-wise math, comparisons, logic, Clip/Cast/Where, Softmax family, reductions, MatMul and Gemm.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <random>
#include <cstring>
#include <limits>

#include "kernels/dispatch.h"
#include "kernels/elementwise.h"
#include "kernels/gelu.h"
#include "kernels/gemm.h"
#include "runtime/op_util.h"

namespace lowbit {

namespace {

using Outs = std::vector<Tensor>;

// ---- unary ----
#define FLOAT_UNARY(NAME, EXPR)                                            \
  Outs op_##NAME(const OpContext& c) {                                     \
    return {map_float(c.in(0), c, [=](auto x) -> decltype(x) { return EXPR; })}; \
  }
FLOAT_UNARY(Sqrt, std::sqrt(x))
FLOAT_UNARY(Log, std::log(x))
FLOAT_UNARY(Erf, std::erf(x))
FLOAT_UNARY(Tanh, std::tanh(x))
FLOAT_UNARY(Reciprocal, 1 / x)
FLOAT_UNARY(Sin, std::sin(x))
FLOAT_UNARY(Cos, std::cos(x))
FLOAT_UNARY(Tan, std::tan(x))
FLOAT_UNARY(Asin, std::asin(x))
FLOAT_UNARY(Acos, std::acos(x))
FLOAT_UNARY(Atan, std::atan(x))
FLOAT_UNARY(Sinh, std::sinh(x))
FLOAT_UNARY(Cosh, std::cosh(x))
FLOAT_UNARY(Asinh, std::asinh(x))
FLOAT_UNARY(Acosh, std::acosh(x))
FLOAT_UNARY(Atanh, std::atanh(x))
FLOAT_UNARY(Floor, std::floor(x))
FLOAT_UNARY(Ceil, std::ceil(x))
FLOAT_UNARY(Round, std::nearbyint(x))  // default FE_TONEAREST: ties to even, as ONNX requires
FLOAT_UNARY(Softplus, x > 0 ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x)))
FLOAT_UNARY(Softsign, x / (1 + std::abs(x)))
FLOAT_UNARY(HardSwish, x * std::max<decltype(x)>(0, std::min<decltype(x)>(1, x / 6 + decltype(x)(0.5))))
#undef FLOAT_UNARY

// float32 through a vectorised kernel (within 1 ulp, kernels/elementwise.h) when fast kernels are on; the loop
// below is the reference.
template <typename Fast, typename Ref>
Outs unary_fast(const OpContext& c, Fast fast, Ref ref) {
  const Tensor& x = c.in(0);
  if (!fast_kernels_enabled() || x.dtype() != DType::Float32) return {map_float(x, c, ref)};
  Tensor y = Tensor::uninitialized(DType::Float32, x.shape(), x.layout());  // element-wise: any layout
  const float* a = static_cast<const float*>(x.storage());
  float* b = static_cast<float*>(y.storage_mut());
  int64_t n = x.numel(), chunk = 16384;
#pragma omp parallel for schedule(static) if (n > 4 * chunk)
  for (int64_t i = 0; i < n; i += chunk) fast(a + i, b + i, std::min(chunk, n - i));
  return {y};
}
Outs op_Exp(const OpContext& c) {
  return unary_fast(c, exp_f32, [](auto x) -> decltype(x) { return std::exp(x); });
}
Outs op_Sigmoid(const OpContext& c) {
  return unary_fast(c, sigmoid_f32, [](auto x) -> decltype(x) {
    return x >= 0 ? 1 / (1 + std::exp(-x)) : std::exp(x) / (1 + std::exp(x));
  });
}

Outs op_HardSigmoid(const OpContext& c) {
  double a = c.node.attr_float("alpha", 0.2f), b = c.node.attr_float("beta", 0.5f);
  return {map_float(c.in(0), c, [=](auto x) -> decltype(x) {
    return (decltype(x))std::max(0.0, std::min(1.0, a * x + b));
  })};
}
// Gelu (opset 20): exact or approximate = "tanh", evaluated in double (kernels/gelu.h).
Outs op_Gelu(const OpContext& c) {
  const std::string ap = c.node.attr_string("approximate", "none");
  check(ap == "none" || ap == "tanh", c.where(), ": approximate must be \"none\" or \"tanh\", got \"", ap, "\"");
  const bool tanh_form = ap == "tanh";
  return {map_float(c.in(0), c, [tanh_form](auto x) -> decltype(x) { return (decltype(x))gelu(x, tanh_form); })};
}
Outs op_LeakyRelu(const OpContext& c) {
  double a = c.node.attr_float("alpha", 0.01f);
  return {map_float(c.in(0), c, [=](auto x) -> decltype(x) { return x >= 0 ? x : (decltype(x))(a * x); })};
}
Outs op_Elu(const OpContext& c) {
  double a = c.node.attr_float("alpha", 1.f);
  return {map_float(c.in(0), c, [=](auto x) -> decltype(x) { return x >= 0 ? x : (decltype(x))(a * std::expm1(x)); })};
}
Outs op_Celu(const OpContext& c) {
  double a = c.node.attr_float("alpha", 1.f);
  return {map_float(c.in(0), c, [=](auto x) -> decltype(x) {
    return (decltype(x))(std::max(0.0, (double)x) + std::min(0.0, a * std::expm1(x / a)));
  })};
}
Outs op_Selu(const OpContext& c) {
  double a = c.node.attr_float("alpha", 1.67326319217681884765625f);
  double g = c.node.attr_float("gamma", 1.05070102214813232421875f);
  return {map_float(c.in(0), c, [=](auto x) -> decltype(x) {
    return (decltype(x))(x > 0 ? g * x : g * a * std::expm1(x));
  })};
}
Outs op_ThresholdedRelu(const OpContext& c) {
  double a = c.node.attr_float("alpha", 1.f);
  return {map_float(c.in(0), c, [=](auto x) -> decltype(x) { return x > a ? x : 0; })};
}
Outs op_Neg(const OpContext& c) {
  return {map_numeric(c.in(0), c, [](auto x) { return wrap_neg(x); })};
}
Outs op_Abs(const OpContext& c) {
  return {map_numeric(c.in(0), c, [](auto x) {
    if constexpr (std::is_unsigned_v<decltype(x)>) return x;
    else return x < 0 ? wrap_neg(x) : x;
  })};
}
Outs op_Relu(const OpContext& c) {
  return {map_numeric(c.in(0), c, [](auto x) { return x > 0 ? x : (decltype(x))0; })};
}
Outs op_Sign(const OpContext& c) {
  return {map_numeric(c.in(0), c, [](auto x) { return (decltype(x))((x > 0) - (x < 0)); })};
}

Tensor float_predicate(const Tensor& x, const OpContext& c, auto pred) {
  Tensor xf = x.dtype() == DType::Float64 ? x : x.cast(DType::Float32);
  Tensor y(DType::Bool, x.shape());
  bool* py = y.data<bool>();
  if (xf.dtype() == DType::Float64) {
    for (int64_t i = 0; i < x.numel(); ++i) py[i] = pred(xf.data<double>()[i]);
  } else {
    check(dtype_is_float(x.dtype()), c.where(), ": expects a float tensor");
    for (int64_t i = 0; i < x.numel(); ++i) py[i] = pred((double)xf.data<float>()[i]);
  }
  return y;
}
Outs op_IsNaN(const OpContext& c) { return {float_predicate(c.in(0), c, [](double v) { return std::isnan(v); })}; }
Outs op_IsInf(const OpContext& c) {
  bool pos = c.node.attr_int("detect_positive", 1), neg = c.node.attr_int("detect_negative", 1);
  return {float_predicate(c.in(0), c, [&](double v) { return std::isinf(v) && ((v > 0 && pos) || (v < 0 && neg)); })};
}

Outs op_Identity(const OpContext& c) { return {c.in(0)}; }

// Training mode (opset 12+): mask = U[0, 1) >= ratio, y = x * mask / (1 - ratio). U comes from MT19937 seeded with
// the `seed` attribute (0 when absent, so runs are reproducible) and turned into doubles as NumPy's legacy
// RandomState does ((a >> 5) * 2^26 + (b >> 6)) / 2^53 in row-major order, the generator ONNX's reference uses.
Outs op_Dropout(const OpContext& c) {
  bool training = c.opset >= 12 ? (c.has(2) && first_i64(c, 2) != 0) : c.node.attr_int("is_test", 1) == 0 && c.opset < 7;
  const Tensor& x = c.in(0);
  Tensor mask(DType::Bool, x.shape());
  std::fill(mask.data<bool>(), mask.data<bool>() + mask.numel(), true);
  double ratio = c.opset >= 12 ? (c.has(1) ? first_f64(c, 1) : 0.5) : c.node.attr_float("ratio", 0.5f);
  if (!training || ratio == 0) return {x, mask};
  check(ratio > 0 && ratio < 1, c.where(), ": ratio ", ratio, " is outside [0, 1) in training mode");
  check(dtype_is_float(x.dtype()), c.where(), ": training mode needs a float input");
  std::mt19937 gen((uint32_t)c.node.attr_int("seed", 0));
  bool* m = mask.data<bool>();
  for (int64_t i = 0; i < mask.numel(); ++i) {
    uint32_t a = gen() >> 5, b = gen() >> 6;
    m[i] = (a * 67108864.0 + b) / 9007199254740992.0 >= ratio;
  }
  Tensor xf = x.cast(DType::Float32), y(DType::Float32, x.shape());
  float scale = (float)(1.0 / (1.0 - ratio));
  for (int64_t i = 0; i < y.numel(); ++i) y.data<float>()[i] = m[i] ? xf.data<float>()[i] * scale : 0.f;
  return {y.cast(x.dtype()), mask};
}

// ---- binary ----
Outs op_Add(const OpContext& c) { return {binary_op(c.in(0), c.in(1), c, [](auto a, auto b) { return wrap_add(a, b); })}; }
Outs op_Sub(const OpContext& c) { return {binary_op(c.in(0), c.in(1), c, [](auto a, auto b) { return wrap_sub(a, b); })}; }
Outs op_Mul(const OpContext& c) { return {binary_op(c.in(0), c.in(1), c, [](auto a, auto b) { return wrap_mul(a, b); })}; }
// Integer division and modulo record a zero divisor (or INT_MIN / -1, which overflows) in a flag and produce 0;
// the error is raised after the loop, because an exception must not leave the loop's OpenMP region.
enum IntDivFault { kDivOk = 0, kDivByZero = 1, kDivOverflow = 2 };
// True when a / b cannot be computed; for modulo (overflow_is_error false) min % -1 is not a fault: the caller
// returns its exact value 0.
template <typename T>
bool int_div_fault(T a, T b, std::atomic<int>& fault, bool overflow_is_error = true) {
  if (b == 0) {
    fault.fetch_or(kDivByZero, std::memory_order_relaxed);
    return true;
  }
  if constexpr (std::is_signed_v<T>) {
    if (a == std::numeric_limits<T>::min() && b == T(-1)) {
      if (overflow_is_error) fault.fetch_or(kDivOverflow, std::memory_order_relaxed);
      return true;
    }
  }
  return false;
}
void check_int_div(const std::atomic<int>& fault, const OpContext& c, const char* what) {
  int f = fault.load();
  check(!(f & kDivByZero), c.where(), ": integer ", what, " by zero");
  check(!(f & kDivOverflow), c.where(), ": integer ", what, " of the type's minimum by -1 overflows");
}

Outs op_Div(const OpContext& c) {
  std::atomic<int> fault{kDivOk};
  Tensor y = binary_op(c.in(0), c.in(1), c, [&](auto a, auto b) -> decltype(a) {
    if constexpr (std::is_integral_v<decltype(a)>)
      if (int_div_fault(a, b, fault)) return 0;
    return a / b;
  });
  check_int_div(fault, c, "division");
  return {y};
}
Outs op_Pow(const OpContext& c) {
  DType dt = c.in(0).dtype();
  // float32 base, one exponent: the same double-precision pow per element without converting whole tensors; an
  // exponent of 2 is x * x, which is exact in double, so rounding it once to float gives the same bits.
  if (fast_kernels_enabled() && dt == DType::Float32 && c.in(1).numel() == 1 && dtype_is_float(c.in(1).dtype()) &&
      c.in(1).rank() <= c.in(0).rank()) {
    double e = c.in(1).to_f64()[0];
    const Tensor& x = c.in(0);
    Tensor y(DType::Float32, x.shape());
    const float* a = x.data<float>();
    float* b = y.data<float>();
    int64_t n = x.numel();
    if (e == 2.0) {
#pragma omp parallel for schedule(static) if (n > 65536)
      for (int64_t i = 0; i < n; ++i) b[i] = a[i] * a[i];
    } else {
#pragma omp parallel for schedule(static) if (n > 65536)
      for (int64_t i = 0; i < n; ++i) b[i] = (float)std::pow((double)a[i], e);
    }
    return {y};
  }
  Tensor r = binary_op(c.in(0).cast(DType::Float64), c.in(1).cast(DType::Float64), c,
                       [](double a, double b) { return std::pow(a, b); });
  return {r.cast(dt)};
}
Outs op_PRelu(const OpContext& c) {
  return {binary_op(c.in(0), c.in(1), c, [](auto x, auto s) { return x < 0 ? wrap_mul(x, s) : x; })};
}
Outs op_Mod(const OpContext& c) {
  bool fmod = c.node.attr_int("fmod", 0);
  std::atomic<int> fault{kDivOk};
  Tensor y = binary_op(c.in(0), c.in(1), c, [&](auto a, auto b) -> decltype(a) {
    using T = decltype(a);
    if constexpr (std::is_integral_v<T>) {
      if (int_div_fault(a, b, fault, false)) return 0;
      T r = (T)(a % b);
      if (!fmod && r != 0 && ((r < 0) != (b < 0))) r = (T)(r + b);  // sign of the divisor, as Python
      return r;
    } else {
      T r = std::fmod(a, b);
      if (!fmod && r != 0 && ((r < 0) != (b < 0))) r += b;
      return r;
    }
  });
  check_int_div(fault, c, "modulo");
  return {y};
}

template <typename F>
Outs variadic(const OpContext& c, F f) {
  Tensor acc = c.in(0);
  for (size_t i = 1; i < c.num_inputs(); ++i) acc = binary_op(acc, c.in(i), c, f);
  if (c.num_inputs() == 1) acc = acc.clone();
  return {acc};
}
Outs op_Max(const OpContext& c) { return variadic(c, [](auto a, auto b) { return (std::isnan((double)a) || a > b) ? a : b; }); }
Outs op_Min(const OpContext& c) { return variadic(c, [](auto a, auto b) { return (std::isnan((double)a) || a < b) ? a : b; }); }
Outs op_Sum(const OpContext& c) { return variadic(c, [](auto a, auto b) { return wrap_add(a, b); }); }
Outs op_Mean(const OpContext& c) {
  Tensor s = variadic(c, [](auto a, auto b) { return wrap_add(a, b); })[0];
  double n = (double)c.num_inputs();
  return {map_float(s, c, [&](auto x) -> decltype(x) { return (decltype(x))(x / n); })};
}

#define COMPARE(NAME, EXPR) \
  Outs op_##NAME(const OpContext& c) { return {compare_op(c.in(0), c.in(1), c, [](auto a, auto b) { return EXPR; })}; }
// Equal on strings (opset 19): the one op besides Cast that reads string elements.
Tensor equal_strings(const Tensor& a, const Tensor& b, const OpContext& c) {
  check(b.dtype() == DType::String, c.where(), ": input dtypes differ (string vs ", dtype_name(b.dtype()), ")");
  Tensor y = Tensor::uninitialized(DType::Bool, broadcast_shapes({a.shape(), b.shape()}, c.where()));
  const auto &sa = a.strings(), &sb = b.strings();
  bool* py = y.data<bool>();
  broadcast_for_each<2>(y.shape(), {a.shape(), b.shape()},
                        [&](int64_t i, const std::array<int64_t, 2>& o) { py[i] = sa[(size_t)o[0]] == sb[(size_t)o[1]]; });
  return y;
}
Outs op_Equal(const OpContext& c) {
  if (c.in(0).dtype() == DType::String) return {equal_strings(c.in(0), c.in(1), c)};
  return {compare_op(c.in(0), c.in(1), c, [](auto a, auto b) { return a == b; })};
}
COMPARE(Less, a < b)
COMPARE(Greater, a > b)
COMPARE(LessOrEqual, a <= b)
COMPARE(GreaterOrEqual, a >= b)
COMPARE(And, a && b)
COMPARE(Or, a || b)
COMPARE(Xor, (bool)a != (bool)b)
#undef COMPARE

Outs op_Not(const OpContext& c) {
  Tensor y(DType::Bool, c.in(0).shape());
  const bool* x = c.in(0).data<bool>();
  for (int64_t i = 0; i < y.numel(); ++i) y.data<bool>()[i] = !x[i];
  return {y};
}

Outs op_Where(const OpContext& c) {
  const Tensor &cond = c.in(0), &a = c.in(1), &b = c.in(2);
  check(a.dtype() == b.dtype(), c.where(), ": X and Y dtypes differ");
  Shape out = broadcast_shapes({cond.shape(), a.shape(), b.shape()}, c.where());
  Tensor y(a.dtype(), out);
  size_t es = dtype_size(a.dtype());
  const bool* pc = cond.data<bool>();
  auto* pa = static_cast<const std::byte*>(a.raw());
  auto* pb = static_cast<const std::byte*>(b.raw());
  auto* py = static_cast<std::byte*>(y.raw_mut());
  broadcast_for_each<3>(out, {cond.shape(), a.shape(), b.shape()}, [&](int64_t i, const std::array<int64_t, 3>& o) {
    std::memcpy(py + i * es, pc[o[0]] ? pa + o[1] * es : pb + o[2] * es, es);
  });
  return {y};
}

Outs op_Clip(const OpContext& c) {
  double lo = -std::numeric_limits<double>::infinity(), hi = std::numeric_limits<double>::infinity();
  if (c.opset < 11) {
    lo = c.node.attr_float("min", -std::numeric_limits<float>::max());
    hi = c.node.attr_float("max", std::numeric_limits<float>::max());
  } else {
    if (c.has(1)) lo = first_f64(c, 1);
    if (c.has(2)) hi = first_f64(c, 2);
  }
  // float32 with float32 bounds: clamping in float gives the same bits as clamping in double and rounding back.
  if (fast_kernels_enabled() && c.in(0).dtype() == DType::Float32 && (double)(float)lo == lo &&
      (double)(float)hi == hi) {
    float flo = (float)lo, fhi = (float)hi;
    return {map_float(c.in(0), c, [=](float x) { return std::isnan(x) ? x : std::min(std::max(x, flo), fhi); })};
  }
  return {map_numeric(c.in(0), c, [=](auto x) -> decltype(x) {
    using T = decltype(x);
    if (std::isnan((double)x)) return x;
    double v = std::min(std::max((double)x, lo), hi);
    return saturate_from_double<T>(v);
  })};
}

Outs op_Cast(const OpContext& c) {
  DType to = dtype_from_onnx((int32_t)c.node.attr_int("to", 0));
  return {c.in(0).cast(to)};
}
Outs op_CastLike(const OpContext& c) { return {c.in(0).cast(c.in(1).dtype())}; }

Outs op_Constant(const OpContext& c) {
  for (auto& a : c.node.attrs) {
    if (a.name == "value") return {a.t};
    if (a.name == "value_float") return {Tensor::scalar<float>(a.f)};
    if (a.name == "value_int") return {Tensor::scalar<int64_t>(a.i)};
    if (a.name == "value_floats") return {Tensor::from_vector<float>({(int64_t)a.floats.size()}, a.floats)};
    if (a.name == "value_ints") return {Tensor::from_vector<int64_t>({(int64_t)a.ints.size()}, a.ints)};
    if (a.name == "value_string") return {Tensor::from_strings({}, {a.s})};
    if (a.name == "value_strings") return {Tensor::from_strings({(int64_t)a.strings.size()}, a.strings)};
    if (a.name == "sparse_value") unsupported(c.where(), ": Constant 'sparse_value' is not supported");
  }
  fail(c.where(), ": Constant without a value attribute");
}

// ---- softmax family ----
// Splits shape at axis into [outer, n, inner]; opset < 13 coerces to 2-D (everything from axis on is one row).
void softmax_dims(const OpContext& c, const Shape& s, int64_t dflt_axis, int64_t& outer, int64_t& n, int64_t& inner) {
  int64_t r = (int64_t)s.size();
  int64_t axis = norm_axis(c.node.attr_int("axis", dflt_axis), r, c);
  outer = 1, n = 1, inner = 1;
  if (c.opset < 13) {
    for (int64_t i = 0; i < axis; ++i) outer *= s[i];
    for (int64_t i = axis; i < r; ++i) n *= s[i];
  } else {
    for (int64_t i = 0; i < axis; ++i) outer *= s[i];
    n = s[axis];
    for (int64_t i = axis + 1; i < r; ++i) inner *= s[i];
  }
  if (shape_numel(s) == 0) outer = 0;  // nothing to do, however large the other dimensions are
}

enum class SoftKind { Softmax, LogSoftmax, Hardmax };
template <SoftKind K>
Outs op_softmax(const OpContext& c) {
  const Tensor& x = c.in(0);
  int64_t outer, n, inner;
  softmax_dims(c, x.shape(), c.opset < 13 ? 1 : -1, outer, n, inner);
  Tensor y(x.dtype(), x.shape());
  // float32 rows along the last axis without NaN: the vectorised row kernel (within 1 ulp, kernels/elementwise.h).
  if (K == SoftKind::Softmax && fast_kernels_enabled() && x.dtype() == DType::Float32 && inner == 1 && n > 0) {
    const float* px = x.data<float>();
    float* py = y.data<float>();
    std::atomic<bool> nan{false};
#pragma omp parallel if (outer * n > 16384)
    {
      std::vector<double> scratch((size_t)n);
#pragma omp for schedule(static)
      for (int64_t o = 0; o < outer; ++o) {
        const float* a = px + o * n;
        bool row_nan = false;
        for (int64_t k = 0; k < n; ++k) row_nan |= a[k] != a[k];
        if (row_nan) {
          nan.store(true, std::memory_order_relaxed);
          continue;
        }
        softmax_row_f32(a, py + o * n, n, scratch.data());
      }
    }
    if (!nan.load()) return {y};
    // A row with NaN follows the reference's rules below (recomputed for every row: rare, and simplest).
  }
  visit_dtype(x.dtype(), [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    if constexpr (std::is_floating_point_v<T>) {
      const T* px = x.data<T>();
      T* py = y.data<T>();
#pragma omp parallel for schedule(static) if (outer * inner > 64)
      for (int64_t oi = 0; oi < outer * inner; ++oi) {
        int64_t o = oi / inner, i = oi % inner;
        const T* a = px + o * n * inner + i;
        T* b = py + o * n * inner + i;
        T mx = -std::numeric_limits<T>::infinity();
        int64_t arg = 0;
        for (int64_t k = 0; k < n; ++k)
          if (a[k * inner] > mx) mx = a[k * inner], arg = k;
        if constexpr (K == SoftKind::Hardmax) {
          for (int64_t k = 0; k < n; ++k) b[k * inner] = k == arg ? 1 : 0;
        } else {
          double sum = 0;
          for (int64_t k = 0; k < n; ++k) sum += std::exp((double)(a[k * inner] - mx));
          for (int64_t k = 0; k < n; ++k) {
            if constexpr (K == SoftKind::Softmax) b[k * inner] = (T)(std::exp((double)(a[k * inner] - mx)) / sum);
            else b[k * inner] = (T)((double)(a[k * inner] - mx) - std::log(sum));
          }
        }
      }
    }
  });
  return {y};
}
template <SoftKind K>
Outs op_softmax_any(const OpContext& c) {
  const Tensor& x = c.in(0);
  if (x.dtype() == DType::Float32 || x.dtype() == DType::Float64) return op_softmax<K>(c);
  check(dtype_is_float(x.dtype()), c.where(), ": expects a float tensor");
  Tensor xf = x.cast(DType::Float32);
  std::vector<const Tensor*> ins = {&xf};
  OpContext c2{c.node, c.opset, ins};
  return {op_softmax<K>(c2)[0].cast(x.dtype())};
}

// ---- reductions ----
enum class Red { Sum, Mean, Max, Min, Prod, L1, L2, LogSum, LogSumExp, SumSquare };
template <Red R>
Outs op_reduce(const OpContext& c) {
  const Tensor& x = c.in(0);
  int64_t r = x.rank();
  bool axes_as_input = (R == Red::Sum && c.opset >= 13) || c.opset >= 18;
  std::vector<int64_t> axes = axes_as_input ? (c.has(1) ? c.in(1).to_i64() : std::vector<int64_t>{})
                                            : c.node.attr_ints("axes");
  bool keep = c.node.attr_int("keepdims", 1) != 0;
  if (axes.empty() && c.node.attr_int("noop_with_empty_axes", 0)) return {x};
  std::vector<bool> red(r, axes.empty());
  for (auto a : axes) red[norm_axis(a, r, c)] = true;
  Shape out_keep(r), out;
  for (int64_t d = 0; d < r; ++d) {
    out_keep[d] = red[d] ? 1 : x.shape()[d];
    if (!red[d] || keep) out.push_back(out_keep[d]);
  }
  int64_t on = shape_numel(out_keep);
  // float32 Sum/Mean over trailing axes (LayerNorm's mean over the last axis): rows summed in parallel, each in
  // element order in double, as the generic loop below sums them: the same values, without the double copy.
  int64_t first_red = r;
  while (first_red > 0 && red[(size_t)first_red - 1]) --first_red;
  bool trailing = first_red < r;
  for (int64_t d = 0; d < first_red; ++d) trailing = trailing && !red[(size_t)d];
  if ((R == Red::Sum || R == Red::Mean) && fast_kernels_enabled() && x.dtype() == DType::Float32 && trailing && on > 0) {
    const int64_t n = x.numel() / on;
    const float* px = x.data<float>();
    Tensor y(DType::Float32, out);
    float* py = y.data<float>();
#pragma omp parallel for schedule(static) if (x.numel() > 65536)
    for (int64_t o = 0; o < on; ++o) {
      double a = 0;
      for (int64_t k = 0; k < n; ++k) a += (double)px[o * n + k];
      py[o] = (float)(R == Red::Mean ? a / (double)n : a);
    }
    return {y};
  }
  double init = R == Red::Max ? -INFINITY : R == Red::Min ? INFINITY : R == Red::Prod ? 1.0 : 0.0;
  std::vector<double> acc((size_t)on, init), mx;
  std::vector<double> xv = x.to_f64();
  auto ost = shape_strides(out_keep);
  std::vector<int64_t> st(r);
  for (int64_t d = 0; d < r; ++d) st[d] = red[d] ? 0 : ost[d];
  std::vector<int64_t> idx(r, 0);
  if (R == Red::LogSumExp) {  // stabilise with the per-output max
    mx.assign((size_t)on, -INFINITY);
    broadcast_for_each<1>(x.shape(), {out_keep}, [&](int64_t i, const std::array<int64_t, 1>& o) {
      mx[o[0]] = std::max(mx[o[0]], xv[i]);
    });
  }
  broadcast_for_each<1>(x.shape(), {out_keep}, [&](int64_t i, const std::array<int64_t, 1>& o) {
    double v = xv[i];
    double& a = acc[o[0]];
    switch (R) {
      case Red::Sum: case Red::Mean: case Red::LogSum: a += v; break;
      case Red::Max: a = std::max(a, v); break;
      case Red::Min: a = std::min(a, v); break;
      case Red::Prod: a *= v; break;
      case Red::L1: a += std::abs(v); break;
      case Red::L2: case Red::SumSquare: a += v * v; break;
      case Red::LogSumExp: a += std::exp(v - mx[o[0]]); break;
    }
  });
  int64_t count = on ? x.numel() / on : 0;
  for (int64_t i = 0; i < on; ++i) {
    double& a = acc[i];
    if (R == Red::Mean) a /= (double)count;
    if (R == Red::L2) a = std::sqrt(a);
    if (R == Red::LogSum) a = std::log(a);
    if (R == Red::LogSumExp) a = mx[i] + std::log(a);
  }
  Tensor y = Tensor::from_vector<double>(out, acc).cast(x.dtype());
  return {y};
}

template <bool IsMax>
Outs op_arg(const OpContext& c) {
  const Tensor& x = c.in(0);
  int64_t r = x.rank();
  int64_t axis = norm_axis(c.node.attr_int("axis", 0), r, c);
  bool keep = c.node.attr_int("keepdims", 1) != 0, last = c.node.attr_int("select_last_index", 0) != 0;
  int64_t outer = 1, n = x.shape()[axis], inner = 1;
  for (int64_t d = 0; d < axis; ++d) outer *= x.shape()[d];
  for (int64_t d = axis + 1; d < r; ++d) inner *= x.shape()[d];
  Shape out = x.shape();
  if (keep) out[axis] = 1;
  else out.erase(out.begin() + axis);
  Tensor y(DType::Int64, out);
  std::vector<double> v = x.to_f64();
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      int64_t best = 0;
      for (int64_t k = 1; k < n; ++k) {
        double a = v[(o * n + k) * inner + i], b = v[(o * n + best) * inner + i];
        bool better = IsMax ? (a > b || (last && a == b)) : (a < b || (last && a == b));
        if (better) best = k;
      }
      y.data<int64_t>()[o * inner + i] = best;
    }
  return {y};
}

// ---- MatMul / Gemm ----
template <typename T>
void matmul_naive(int64_t M, int64_t N, int64_t K, const T* a, const T* b, T* y) {
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) {
      T acc = 0;
      for (int64_t k = 0; k < K; ++k) acc = wrap_add(acc, wrap_mul(a[m * K + k], b[k * N + n]));
      y[m * N + n] = acc;
    }
}

}  // namespace

// Batched, broadcasting matrix product (NumPy matmul semantics), shared with MatMulInteger's shape logic.
Tensor matmul(const Tensor& A, const Tensor& B, const std::string& where) {
  check(A.rank() >= 1 && B.rank() >= 1, where, ": MatMul inputs must have rank >= 1");
  check(A.dtype() == B.dtype(), where, ": MatMul input dtypes differ");
  Shape sa = A.shape(), sb = B.shape();
  bool a1 = sa.size() == 1, b1 = sb.size() == 1;
  if (a1) sa.insert(sa.begin(), 1);
  if (b1) sb.push_back(1);
  int64_t M = sa[sa.size() - 2], K = sa.back(), N = sb.back();
  check(sb[sb.size() - 2] == K, where, ": MatMul shapes ", shape_str(A.shape()), " and ", shape_str(B.shape()),
        " do not agree on the inner dimension");
  Shape ba(sa.begin(), sa.end() - 2), bb(sb.begin(), sb.end() - 2);
  Shape batch = broadcast_shapes({ba, bb}, where);
  Shape out = batch;
  if (!a1) out.push_back(M);
  if (!b1) out.push_back(N);
  Tensor y(A.dtype(), out);
  int64_t nb = shape_numel(batch);
  // Offsets of each batch's matrices (broadcast over batch dims).
  std::vector<int64_t> oa(nb), ob(nb);
  broadcast_for_each<2>(batch, {ba, bb}, [&](int64_t i, const std::array<int64_t, 2>& o) {
    oa[i] = o[0] * M * K;
    ob[i] = o[1] * K * N;
  });
  if (nb == 0) return y;
  visit_dtype(A.dtype(), [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    if constexpr (std::is_same_v<T, float>) {
      // One B for every batch and the A matrices back to back (x[B, T, D] times a weight [D, E]): a single GEMM
      // with nb * M rows.
      bool shared_b = true;
      for (int64_t i = 0; i < nb && shared_b; ++i) shared_b = ob[i] == ob[0] && oa[i] == i * M * K;
      if (shared_b && nb > 1) {
        sgemm(false, false, nb * M, N, K, 1.f, A.data<float>() + oa[0], K, B.data<float>() + ob[0], N, 0.f,
              y.data<float>(), N);
      } else {
        auto one = [&](int64_t i) {
          sgemm(false, false, M, N, K, 1.f, A.data<float>() + oa[i], K, B.data<float>() + ob[i], N, 0.f,
                y.data<float>() + i * M * N, N);
        };
        if (nb >= 4 && M * N * K < (int64_t)1 << 22) {
          // Many small products (attention heads): one per thread, each single-threaded inside OpenBLAS.
#pragma omp parallel for schedule(static)
          for (int64_t i = 0; i < nb; ++i) one(i);
        } else {
          // Outside any OpenMP region, so OpenBLAS may use every thread (an inactive region would stop it).
          for (int64_t i = 0; i < nb; ++i) one(i);
        }
      }
    } else if constexpr (std::is_same_v<T, double>) {
      for (int64_t i = 0; i < nb; ++i)
        dgemm(false, false, M, N, K, 1.0, A.data<double>() + oa[i], K, B.data<double>() + ob[i], N, 0.0,
              y.data<double>() + i * M * N, N);
    } else if constexpr (is_native_num<T>::value) {
      for (int64_t i = 0; i < nb; ++i)
        matmul_naive<T>(M, N, K, A.data<T>() + oa[i], B.data<T>() + ob[i], y.data<T>() + i * M * N);
    } else {
      unsupported(where, ": MatMul on ", dtype_name(A.dtype()));
    }
  });
  return y;
}

namespace {
Outs op_MatMul(const OpContext& c) {
  DType dt = c.in(0).dtype();
  if (dt == DType::Float16 || dt == DType::BFloat16)
    return {matmul(c.in(0).cast(DType::Float32), c.in(1).cast(DType::Float32), c.where()).cast(dt)};
  return {matmul(c.in(0), c.in(1), c.where())};
}

Outs op_Gemm(const OpContext& c) {
  Tensor A = c.in(0), B = c.in(1);
  DType dt = A.dtype();
  if (dt != DType::Float64) {
    A = A.cast(DType::Float32);
    B = B.cast(DType::Float32);
  }
  check(A.rank() == 2 && B.rank() == 2, c.where(), ": Gemm inputs must be 2-D, got ", shape_str(A.shape()), " and ",
        shape_str(B.shape()));
  bool ta = c.node.attr_int("transA", 0), tb = c.node.attr_int("transB", 0);
  double alpha = c.node.attr_float("alpha", 1.f), beta = c.node.attr_float("beta", 1.f);
  int64_t M = ta ? A.dim(1) : A.dim(0), K = ta ? A.dim(0) : A.dim(1);
  int64_t Kb = tb ? B.dim(1) : B.dim(0), N = tb ? B.dim(0) : B.dim(1);
  check(K == Kb, c.where(), ": Gemm inner dimensions differ (", K, " vs ", Kb, ")");
  Tensor y(A.dtype(), {M, N});
  double bscale = 0;
  if (c.has(2) && beta != 0) {
    Tensor C = c.in(2).cast(A.dtype());
    Shape bs = broadcast_shapes({C.shape(), {M, N}}, c.where());
    check(bs == Shape({M, N}), c.where(), ": Gemm C of shape ", shape_str(C.shape()), " does not broadcast to [", M, ",", N, "]");
    visit_dtype(A.dtype(), [&](auto* tag) {
      using T = std::remove_pointer_t<decltype(tag)>;
      if constexpr (std::is_floating_point_v<T>) {
        T* py = y.data<T>();
        const T* pc = C.data<T>();
        broadcast_for_each<1>(Shape{M, N}, {C.shape()}, [&](int64_t i, const std::array<int64_t, 1>& o) { py[i] = pc[o[0]]; });
      }
    });
    bscale = beta;
  }
  if (A.dtype() == DType::Float32)
    sgemm(ta, tb, M, N, K, (float)alpha, A.data<float>(), A.dim(1), B.data<float>(), B.dim(1), (float)bscale,
          y.data<float>(), N);
  else
    dgemm(ta, tb, M, N, K, alpha, A.data<double>(), A.dim(1), B.data<double>(), B.dim(1), bscale, y.data<double>(), N);
  return {y.cast(dt)};
}

}  // namespace

void register_math_ops(OpRegistry& r) {
  struct E { const char* name; ComputeFn fn; int since; };
  const E table[] = {
      {"Sqrt", op_Sqrt, 6}, {"Exp", op_Exp, 6}, {"Log", op_Log, 6}, {"Erf", op_Erf, 9}, {"Tanh", op_Tanh, 6},
      {"Sigmoid", op_Sigmoid, 6}, {"Reciprocal", op_Reciprocal, 6}, {"Sin", op_Sin, 7}, {"Cos", op_Cos, 7},
      {"Tan", op_Tan, 7}, {"Asin", op_Asin, 7}, {"Acos", op_Acos, 7}, {"Atan", op_Atan, 7}, {"Sinh", op_Sinh, 9},
      {"Cosh", op_Cosh, 9}, {"Asinh", op_Asinh, 9}, {"Acosh", op_Acosh, 9}, {"Atanh", op_Atanh, 9},
      {"Floor", op_Floor, 6}, {"Ceil", op_Ceil, 6}, {"Round", op_Round, 11}, {"Softplus", op_Softplus, 1},
      {"Softsign", op_Softsign, 1}, {"HardSwish", op_HardSwish, 14}, {"HardSigmoid", op_HardSigmoid, 6}, {"Gelu", op_Gelu, 20},
      {"LeakyRelu", op_LeakyRelu, 6}, {"Elu", op_Elu, 6}, {"Celu", op_Celu, 12}, {"Selu", op_Selu, 6},
      {"ThresholdedRelu", op_ThresholdedRelu, 10}, {"Neg", op_Neg, 6}, {"Abs", op_Abs, 6}, {"Relu", op_Relu, 6},
      {"Sign", op_Sign, 9}, {"IsNaN", op_IsNaN, 9}, {"IsInf", op_IsInf, 10}, {"Identity", op_Identity, 1},
      {"Dropout", op_Dropout, 7}, {"Add", op_Add, 7}, {"Sub", op_Sub, 7}, {"Mul", op_Mul, 7}, {"Div", op_Div, 7},
      {"Pow", op_Pow, 7}, {"PRelu", op_PRelu, 7}, {"Mod", op_Mod, 10}, {"Max", op_Max, 8}, {"Min", op_Min, 8},
      {"Sum", op_Sum, 8}, {"Mean", op_Mean, 8}, {"Equal", op_Equal, 7}, {"Less", op_Less, 7},
      {"Greater", op_Greater, 7}, {"LessOrEqual", op_LessOrEqual, 12}, {"GreaterOrEqual", op_GreaterOrEqual, 12},
      {"And", op_And, 7}, {"Or", op_Or, 7}, {"Xor", op_Xor, 7}, {"Not", op_Not, 1}, {"Where", op_Where, 9},
      {"Clip", op_Clip, 6}, {"Cast", op_Cast, 6}, {"CastLike", op_CastLike, 15}, {"Constant", op_Constant, 1},
      {"Softmax", op_softmax_any<SoftKind::Softmax>, 1}, {"LogSoftmax", op_softmax_any<SoftKind::LogSoftmax>, 1},
      {"Hardmax", op_softmax_any<SoftKind::Hardmax>, 1},
      {"ReduceSum", op_reduce<Red::Sum>, 1}, {"ReduceMean", op_reduce<Red::Mean>, 1},
      {"ReduceMax", op_reduce<Red::Max>, 1}, {"ReduceMin", op_reduce<Red::Min>, 1},
      {"ReduceProd", op_reduce<Red::Prod>, 1}, {"ReduceL1", op_reduce<Red::L1>, 1},
      {"ReduceL2", op_reduce<Red::L2>, 1}, {"ReduceLogSum", op_reduce<Red::LogSum>, 1},
      {"ReduceLogSumExp", op_reduce<Red::LogSumExp>, 1}, {"ReduceSumSquare", op_reduce<Red::SumSquare>, 1},
      {"ArgMax", op_arg<true>, 1}, {"ArgMin", op_arg<false>, 1}, {"MatMul", op_MatMul, 1}, {"Gemm", op_Gemm, 7},
  };
  for (auto& e : table) r.add({e.name, "", e.since, e.fn});
}

}  // namespace lowbit
