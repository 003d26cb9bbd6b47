// Helpers shared by op implementations: axis normalisation, typed dispatch, unary/binary element-wise maps.
#pragma once
#include <array>
#include <cmath>
#include <limits>
#include <type_traits>

#include "kernels/dispatch.h"
#include "kernels/broadcast.h"
#include "runtime/op_registry.h"

namespace lowbit {

// The first value of input i (a scalar or 1-element tensor by the op's definition); an empty tensor is an error
// naming the node and the input rather than an out-of-range exception.
inline double first_f64(const OpContext& c, size_t i) {
  const Tensor& t = c.in(i);
  check(t.numel() >= 1, c.where(), ": input ", i, " is empty; it must hold a value");
  return t.to_f64()[0];
}
inline int64_t first_i64(const OpContext& c, size_t i) {
  const Tensor& t = c.in(i);
  check(t.numel() >= 1, c.where(), ": input ", i, " is empty; it must hold a value");
  return t.to_i64()[0];
}

// Splits a shape at `axis` into outer (dims before) x n (the axis) x inner (dims after); outer is 0 for an empty
// shape, so loops over it do nothing however large the other dimensions are.
inline void split_dims(const Shape& s, int64_t axis, int64_t& outer, int64_t& n, int64_t& inner) {
  outer = 1, inner = 1, n = s[axis];
  for (int64_t d = 0; d < axis; ++d) outer *= s[d];
  for (size_t d = axis + 1; d < s.size(); ++d) inner *= s[d];
  if (shape_numel(s) == 0) outer = 0;
}

// An axis in [-rank, rank) made non-negative; a scalar has no axis to take.
inline int64_t norm_axis(int64_t axis, int64_t rank, const OpContext& c) {
  check(rank > 0, c.where(), ": axis ", axis, " given for a scalar input (rank 0); the op needs at least rank 1");
  check(axis >= -rank && axis < rank, c.where(), ": axis ", axis, " out of range for rank ", rank);
  return axis < 0 ? axis + rank : axis;
}

// Integer arithmetic as ONNX (and NumPy) define it: two's-complement wrap-around. Signed overflow is undefined in
// C++, so signed integers are computed in the unsigned type of at least int's width; floats are unchanged.
template <typename T>
using wrap_unsigned_t = std::conditional_t<(sizeof(T) < sizeof(unsigned)), unsigned, std::make_unsigned_t<T>>;
template <typename T>
T wrap_add(T a, T b) {
  if constexpr (std::is_integral_v<T> && std::is_signed_v<T>) return (T)((wrap_unsigned_t<T>)a + (wrap_unsigned_t<T>)b);
  else return (T)(a + b);
}
template <typename T>
T wrap_sub(T a, T b) {
  if constexpr (std::is_integral_v<T> && std::is_signed_v<T>) return (T)((wrap_unsigned_t<T>)a - (wrap_unsigned_t<T>)b);
  else return (T)(a - b);
}
template <typename T>
T wrap_mul(T a, T b) {
  if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>)
    return (T)((wrap_unsigned_t<T>)a * (wrap_unsigned_t<T>)b);
  else return (T)(a * b);
}

template <typename T>
T wrap_neg(T a) {
  if constexpr (std::is_integral_v<T> && std::is_signed_v<T>) return (T)(0u - (wrap_unsigned_t<T>)a);
  else return (T)(-a);
}

// double -> T without undefined behaviour: integers saturate (NaN gives 0), floats convert as usual.
template <typename T>
T saturate_from_double(double v) {
  if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
    if (std::isnan(v)) return T(0);
    if (v >= (double)std::numeric_limits<T>::max()) return std::numeric_limits<T>::max();
    if (v <= (double)std::numeric_limits<T>::lowest()) return std::numeric_limits<T>::lowest();
    return (T)v;
  } else {
    return (T)v;
  }
}

template <typename T>
using is_native_num = std::bool_constant<std::is_arithmetic_v<T> && !std::is_same_v<T, bool>>;

// Applies f elementwise, computing float16/bfloat16 through float.
// Layout-preserving: the output is stored like the input (element-wise, so any layout gives the same values).
template <typename F>
Tensor map_float(const Tensor& x, const OpContext& c, F f) {
  DType dt = x.dtype();
  if (dt == DType::Float16 || dt == DType::BFloat16) return map_float(x.to_plain().cast(DType::Float32), c, f).cast(dt);
  Tensor y = Tensor::uninitialized(dt, x.shape(), x.layout());
  int64_t n = x.numel();
  if (dt == DType::Float32) {
    const float* a = static_cast<const float*>(x.storage());
    float* b = static_cast<float*>(y.storage_mut());
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; ++i) b[i] = (float)f((float)a[i]);
  } else if (dt == DType::Float64) {
    const double* a = static_cast<const double*>(x.storage());
    double* b = static_cast<double*>(y.storage_mut());
    for (int64_t i = 0; i < n; ++i) b[i] = f(a[i]);
  } else {
    fail(c.where(), ": expects a float tensor, got ", dtype_name(dt));
  }
  return y;
}
// Arithmetic: result has the input dtype.
template <typename F>
Tensor binary_op(const Tensor& a, const Tensor& b, const OpContext& c, F f) { return binary_impl<false>(a, b, c, f); }
// Comparison / logic: boolean result.
template <typename F>
Tensor compare_op(const Tensor& a, const Tensor& b, const OpContext& c, F f) { return binary_impl<true>(a, b, c, f); }

// Applies f to every numeric dtype (ints too); f receives and returns the element type.
template <typename F>
Tensor map_numeric(const Tensor& x, const OpContext& c, F f) {
  DType dt = x.dtype();
  if (dt == DType::Float16 || dt == DType::BFloat16)
    return map_numeric(x.to_plain().cast(DType::Float32), c, f).cast(dt);
  Tensor y = Tensor::uninitialized(dt, x.shape(), x.layout());  // layout-preserving, as map_float
  visit_dtype(dt, [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    if constexpr (is_native_num<T>::value) {
      const T* a = static_cast<const T*>(x.storage());
      T* b = static_cast<T*>(y.storage_mut());
      int64_t n = x.numel();
#pragma omp parallel for schedule(static) if (n > 65536)
      for (int64_t i = 0; i < n; ++i) b[i] = (T)f(a[i]);
    } else {
      fail(c.where(), ": unsupported dtype ", dtype_name(dt));
    }
  });
  return y;
}

namespace detail {
template <typename T, typename O, typename F>
void binary_loop_ptr(const T* pa, const Shape& a_shape, const T* pb, const Shape& b_shape, O* py, const Shape& y_shape,
                     F& f);
template <typename T, typename O, typename F>
void binary_loop(const Tensor& a, const Tensor& b, Tensor& y, F& f) {
  binary_loop_ptr<T, O>(a.data<T>(), a.shape(), b.data<T>(), b.shape(), y.data<O>(), y.shape(), f);
}
// Row-major arrays of the given shapes; y_shape is the broadcast of the other two.
template <typename T, typename O, typename F>
void binary_loop_ptr(const T* pa, const Shape& a_shape, const T* pb, const Shape& b_shape, O* py, const Shape& y_shape,
                     F& f) {
  if (a_shape == y_shape && b_shape == y_shape) {
    int64_t n = shape_numel(y_shape);
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; ++i) py[i] = (O)f(pa[i], pb[i]);
  } else if (fast_kernels_enabled()) {
    // Broadcast in runs, each a tight loop the compiler can vectorise; same f on the same elements, same bits.
    broadcast_runs(y_shape, a_shape, b_shape,
                   [&](int64_t o, int64_t ia, int64_t ib, int64_t len, int64_t sa, int64_t sb) {
                     const T* xa = pa + ia;
                     const T* xb = pb + ib;
                     O* out = py + o;
                     if (sa == 1 && sb == 0) {
                       const T bv = *xb;
                       for (int64_t j = 0; j < len; ++j) out[j] = (O)f(xa[j], bv);
                     } else if (sa == 0 && sb == 1) {
                       const T av = *xa;
                       for (int64_t j = 0; j < len; ++j) out[j] = (O)f(av, xb[j]);
                     } else if (sa == 1 && sb == 1) {
                       for (int64_t j = 0; j < len; ++j) out[j] = (O)f(xa[j], xb[j]);
                     } else {
                       for (int64_t j = 0; j < len; ++j) out[j] = (O)f(xa[j * sa], xb[j * sb]);
                     }
                   });
  } else {
    broadcast_for_each<2>(y_shape, {a_shape, b_shape},
                          [&](int64_t i, const std::array<int64_t, 2>& o) { py[i] = (O)f(pa[o[0]], pb[o[1]]); });
  }
}
}  // namespace detail

// Channels-last operands (float32, from layout-aware producers): computed in storage order when that is just a
// relabelling of dims -- the other operand is channels-last of the same shape, or plain with C == 1 or H == W == 1
// (a scalar, a per-channel vector) -- giving a channels-last result; otherwise undefined (the caller goes plain).
template <bool ToBool, typename F>
Tensor binary_channels_last(const Tensor& a, const Tensor& b, F& f) {
  if (ToBool || a.dtype() != DType::Float32) return {};
  const Tensor& cl = a.layout() == Layout::ChannelsLast ? a : b;
  const Tensor& other = &cl == &a ? b : a;
  Shape out = broadcast_shapes({a.shape(), b.shape()}, "");
  if (out != cl.shape()) return {};
  auto nhwc = [](const Shape& s4) { return Shape{s4[0], s4[2], s4[3], s4[1]}; };
  Shape os;  // the other operand's shape in storage order
  if (other.layout() == Layout::ChannelsLast) {
    if (other.shape() != cl.shape()) return {};
    os = nhwc(other.shape());
  } else {
    if (other.rank() > 4) return {};
    Shape s4(4 - other.rank(), 1);
    s4.insert(s4.end(), other.shape().begin(), other.shape().end());
    if (s4[1] != 1 && (s4[2] != 1 || s4[3] != 1)) return {};
    os = nhwc(s4);
  }
  Shape ys = nhwc(out);
  Tensor y = Tensor::uninitialized(DType::Float32, out, Layout::ChannelsLast);
  const float* pa = static_cast<const float*>(a.storage());
  const float* pb = static_cast<const float*>(b.storage());
  const Shape& sa = &cl == &a ? ys : os;
  const Shape& sb = &cl == &a ? os : ys;
  detail::binary_loop_ptr<float, float>(pa, sa, pb, sb, static_cast<float*>(y.storage_mut()), ys, f);
  return y;
}

// Broadcasting binary op; f(a, b) runs on the input element type; float16/bfloat16 go through float.
template <bool ToBool, typename F>
Tensor binary_impl(const Tensor& a_in, const Tensor& b_in, const OpContext& c, F f) {
  DType dt = a_in.dtype();
  check(dt == b_in.dtype(), c.where(), ": input dtypes differ (", dtype_name(dt), " vs ", dtype_name(b_in.dtype()), ")");
  if (a_in.layout() != Layout::Plain || b_in.layout() != Layout::Plain) {
    Tensor y = binary_channels_last<ToBool>(a_in, b_in, f);
    if (y.defined()) return y;
  }
  const Tensor a = a_in.to_plain(), b = b_in.to_plain();
  if (dt == DType::Float16 || dt == DType::BFloat16) {
    Tensor r = binary_impl<ToBool>(a.cast(DType::Float32), b.cast(DType::Float32), c, f);
    return ToBool ? r : r.cast(dt);
  }
  constexpr bool to_bool = ToBool;
  Tensor y = Tensor::uninitialized(to_bool ? DType::Bool : dt, broadcast_shapes({a.shape(), b.shape()}, c.where()));
  visit_dtype(dt, [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    if constexpr (std::is_same_v<T, bool>) {
      if constexpr (to_bool) detail::binary_loop<bool, bool>(a, b, y, f);
      else fail(c.where(), ": arithmetic on booleans is not defined");
    } else if constexpr (std::is_arithmetic_v<T>) {
      if constexpr (to_bool) detail::binary_loop<T, bool>(a, b, y, f);
      else detail::binary_loop<T, T>(a, b, y, f);
    } else {
      unsupported(c.where(), ": unsupported dtype ", dtype_name(dt));
    }
  });
  return y;
}

// Integer list from an optional input tensor (e.g. axes, shape, pads), or from an attribute for old opsets.
inline std::vector<int64_t> ints_from_input_or_attr(const OpContext& c, size_t input, const char* attr,
                                                    std::vector<int64_t> dflt = {}) {
  if (c.has(input)) return c.in(input).to_i64();
  return c.node.attr_ints(attr, std::move(dflt));
}

}  // namespace lowbit

namespace lowbit {
// Batched, broadcasting matrix product with NumPy matmul semantics (ops_math.cpp).
Tensor matmul(const Tensor& A, const Tensor& B, const std::string& where);
// Concatenation of tensors of one dtype along an axis (negative: from the end), as ONNX Concat (ops_shape.cpp).
Tensor concat(const std::vector<const Tensor*>& ins, int64_t axis, const OpContext& c);
}  // namespace lowbit
