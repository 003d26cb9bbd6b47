// ONNX quantization ops: QuantizeLinear/DequantizeLinear (per-tensor and per-axis), DynamicQuantizeLinear,
// ConvInteger/MatMulInteger (int32 outputs) and QLinearConv/QLinearMatMul (requantized outputs).
// Rounding: ONNX specifies round-half-to-even for QuantizeLinear; the QLinear ops requantize in float32 with
// the same rounding, as ONNX Runtime's reference kernels do.
#include <cmath>
#include <climits>
#include <limits>
#include <span>

#include "kernels/conv.h"
#include "kernels/fake_quant.h"
#include "kernels/gemm.h"
#include "kernels/int_softmax.h"
#include "kernels/requantize.h"
#include "runtime/conv_geom.h"
#include "runtime/op_util.h"

namespace lowbit {

namespace {

using Outs = std::vector<Tensor>;

template <typename Q>
Q saturate_round(float v, int32_t zp, float lo = (float)std::numeric_limits<Q>::lowest(),
                 float hi = (float)std::numeric_limits<Q>::max()) {
  // NaN has no integer: lowbit gives it the zero point (it dequantizes to 0) rather than an undefined conversion.
  float r = std::isnan(v) ? (float)zp : std::nearbyint(v) + (float)zp;  // nearbyint: ties to even (default mode)
  r = std::min(std::max(r, lo), hi);
  return (Q)r;
}

// QuantizeLinear per tensor over n values (saturate_round's values, in a loop that vectorises; every operand is a
// by-value local, so the 8-bit stores cannot alias them): x / s (NaN: the zero point) rounded to nearest even by
// kernels/requantize.h's round_even_near, plus the zero point, clamped to [lo, hi].
template <typename Q>
void quantize_run(const float* x, int64_t n, float s, float z, float lo, float hi, Q* y) {
  for (int64_t i = 0; i < n; ++i) {
    float v = x[i] / s;
    float r = round_even_near(v) + z;
    r = v != v ? z : r;
    y[i] = (Q)(int32_t)std::min(std::max(r, lo), hi);
  }
}

// DequantizeLinear per tensor over n codes: (q - z) * s in float32, as the general loop computes it.
template <typename Q>
void dequantize_run(const Q* q, int64_t n, float s, int32_t z, float* y) {
  for (int64_t i = 0; i < n; ++i) y[i] = (float)((int32_t)q[i] - z) * s;
}

// Per-element index into a quantization parameter: 0 for per-tensor; along `axis` for a 1-D parameter; and for
// blocked quantization (opset 21, block_size B > 0) into a parameter of x's rank whose `axis` dimension is
// ceil(D / B): element (o, k, v) around the axis reads (o, k / B, v).
struct AxisIndex {
  int64_t inner = 1, n = 1, dim = 1, block = 0;
  bool per_axis = false;
  int64_t operator()(int64_t i) const {
    if (!per_axis) return 0;
    if (block == 0) return (i / inner) % n;
    int64_t v = i % inner, k = (i / inner) % dim, o = i / (inner * dim);
    return (o * n + k / block) * inner + v;
  }
};
AxisIndex axis_index(const OpContext& c, const Tensor& x, const Tensor& param) {
  AxisIndex a;
  int64_t block = c.node.attr_int("block_size", 0);
  check(block >= 0, c.where(), ": block_size must be >= 0, got ", block);
  if (block == 0 && param.numel() <= 1 && param.rank() <= 1) return a;  // per-tensor
  int64_t axis = norm_axis(c.node.attr_int("axis", 1), x.rank(), c);
  for (int d = (int)axis + 1; d < x.rank(); ++d) a.inner *= x.dim(d);
  a.per_axis = true;
  a.dim = x.dim((int)axis);
  if (block > 0) {
    check(param.rank() == x.rank(), c.where(), ": blocked quantization needs a scale of the input's rank ", x.rank(),
          ", got ", shape_str(param.shape()));
    int64_t blocks = a.dim == 0 ? 0 : (a.dim - 1) / block + 1;
    for (int d = 0; d < x.rank(); ++d)
      check(param.dim(d) == (d == axis ? blocks : x.dim(d)), c.where(), ": scale shape ", shape_str(param.shape()),
            " does not fit input ", shape_str(x.shape()), " with block_size ", block, " on axis ", axis);
    a.block = block;
    a.n = blocks;
    return a;
  }
  check(param.rank() == 1, c.where(), ": scale/zero point must be a scalar or 1-D, got ", shape_str(param.shape()));
  check(param.numel() == a.dim, c.where(), ": ", param.numel(), " scales for axis ", axis, " of size ", a.dim);
  a.n = param.numel();
  return a;
}

Outs op_QuantizeLinear(const OpContext& c) {
  Tensor x = c.in(0).dtype() == DType::Float32 ? c.in(0) : c.in(0).cast(DType::Float32);
  Tensor scale = c.in(1).cast(DType::Float32);
  DType qt = c.has(2) ? c.in(2).dtype() : DType::UInt8;
  if (int64_t od = c.node.attr_int("output_dtype", 0)) {  // opset 21: the type when no zero point gives it
    DType want = dtype_from_onnx((int32_t)od);
    check(!c.has(2) || want == qt, c.where(), ": output_dtype ", dtype_name(want), " differs from the zero point's ",
          dtype_name(qt));
    qt = want;
  }
  Tensor zp = c.has(2) ? c.in(2).cast(DType::Int32) : Tensor::scalar<int32_t>(0);
  if (c.has(2)) check(zp.numel() == scale.numel() && (zp.numel() <= 1 || zp.shape() == scale.shape()), c.where(),
                     ": scale ", shape_str(scale.shape()), " and zero point ", shape_str(zp.shape()), " differ");
  AxisIndex ax = axis_index(c, x, scale);
  // int4/uint4 codes are computed in their 8-bit storage type, saturated to [-8, 7] / [0, 15].
  const DType st = dtype_storage(qt);
  Tensor y(st, x.shape());
  const float* px = x.data<float>();
  const float* ps = scale.data<float>();
  const int32_t* pz = zp.data<int32_t>();
  const bool zp_per_elem = zp.numel() > 1;
  visit_dtype(st, [&](auto* tag) {
    using Q = std::remove_pointer_t<decltype(tag)>;
    if constexpr (std::is_same_v<Q, int8_t> || std::is_same_v<Q, uint8_t> || std::is_same_v<Q, int16_t> ||
                  std::is_same_v<Q, uint16_t>) {
      float lo = qt == DType::Int4 ? -8.f : (float)std::numeric_limits<Q>::lowest();
      float hi = qt == DType::Int4 ? 7.f : qt == DType::UInt4 ? 15.f : (float)std::numeric_limits<Q>::max();
      Q* py = y.data<Q>();
      if (!ax.per_axis) {
        // Per tensor: quantize_run in blocks.
        const int64_t n = x.numel(), block = 1 << 16;
#pragma omp parallel for schedule(static) if (n > 4 * block)
        for (int64_t b0 = 0; b0 < n; b0 += block)
          quantize_run(px + b0, std::min(block, n - b0), ps[0], (float)pz[0], lo, hi, py + b0);
      } else {
        for (int64_t i = 0; i < x.numel(); ++i) {
          int64_t k = ax(i);
          py[i] = saturate_round<Q>(px[i] / ps[k], pz[zp_per_elem ? k : 0], lo, hi);
        }
      }
    } else {
      unsupported(c.where(), ": QuantizeLinear to ", dtype_name(qt));
    }
  });
  return {y.retyped(qt)};
}

Outs op_DequantizeLinear(const OpContext& c) {
  const Tensor& x = c.in(0);
  Tensor scale = c.in(1).cast(DType::Float32);
  Tensor zp = c.has(2) ? c.in(2).cast(DType::Int32) : Tensor::scalar<int32_t>(0);
  if (c.has(2)) check(zp.numel() == scale.numel() && (zp.numel() <= 1 || zp.shape() == scale.shape()), c.where(),
                     ": scale ", shape_str(scale.shape()), " and zero point ", shape_str(zp.shape()), " differ");
  AxisIndex ax = axis_index(c, x, scale);
  if (!ax.per_axis && (x.dtype() == DType::UInt8 || x.dtype() == DType::Int8)) {  // per tensor, 8-bit codes
    Tensor y = Tensor::uninitialized(DType::Float32, x.shape());
    const int64_t n = x.numel(), block = 1 << 16;
    const int32_t z = zp.data<int32_t>()[0];
    const float s = scale.data<float>()[0];
#pragma omp parallel for schedule(static) if (n > 4 * block)
    for (int64_t b0 = 0; b0 < n; b0 += block) {
      if (x.dtype() == DType::UInt8) dequantize_run(x.data<uint8_t>() + b0, std::min(block, n - b0), s, z, y.data<float>() + b0);
      else dequantize_run(x.data<int8_t>() + b0, std::min(block, n - b0), s, z, y.data<float>() + b0);
    }
    return {y};
  }
  Tensor xi = x.cast(DType::Int32);
  Tensor y(DType::Float32, x.shape());
  const int32_t* px = xi.data<int32_t>();
  const float* ps = scale.data<float>();
  const int32_t* pz = zp.data<int32_t>();
  float* py = y.data<float>();
  for (int64_t i = 0; i < x.numel(); ++i) {
    int64_t k = ax(i);
    py[i] = (float)(px[i] - (zp.numel() > 1 ? pz[k] : pz[0])) * ps[k];
  }
  return {y};
}

Outs op_DynamicQuantizeLinear(const OpContext& c) {
  Tensor x = c.in(0).cast(DType::Float32);
  float mn = 0.f, mx = 0.f;
  for (float v : x.span<float>()) {
    mn = std::min(mn, v);
    mx = std::max(mx, v);
  }
  float scale = (mx - mn) / 255.f;
  int32_t zp = 0;
  if (scale > 0) zp = (int32_t)saturate_round<uint8_t>(-mn / scale, 0);
  Tensor y(DType::UInt8, x.shape());
  for (int64_t i = 0; i < x.numel(); ++i)
    y.data<uint8_t>()[i] = scale > 0 ? saturate_round<uint8_t>(x.data<float>()[i] / scale, zp) : (uint8_t)0;
  return {y, Tensor::scalar<float>(scale), Tensor::scalar<uint8_t>((uint8_t)zp)};
}

// Calls f with typed null pointers for a pair of 8-bit code types (uint8 or int8 each; the caller checked them).
template <typename F>
void visit_code_pair(DType a, DType b, F&& f) {
  auto second = [&](auto* ta) {
    if (b == DType::UInt8) f(ta, (uint8_t*)nullptr);
    else f(ta, (int8_t*)nullptr);
  };
  if (a == DType::UInt8) second((uint8_t*)nullptr);
  else second((int8_t*)nullptr);
}

// Integer convolution shared by ConvInteger and QLinearConv. Returns int32 [N, M, *out].
Tensor conv_integer(const OpContext& c, const Tensor& x, const Tensor& xzp_t, const Tensor& w, const Tensor& wzp_t) {
  check(x.rank() >= 3 && w.rank() == x.rank(), c.where(), ": input/weight ranks do not match");
  for (const Tensor* t : {&x, &w})
    check(t->dtype() == DType::UInt8 || t->dtype() == DType::Int8, c.where(), ": inputs must be uint8 or int8, got ",
          dtype_name(t->dtype()));
  // Geometry (strides, dilations, pads) checked as for every conv/pool, overflow included.
  ConvGeom g = node_window_geom(c.node, x.shape(), Shape(w.shape().begin() + 2, w.shape().end()));
  g.out_ch = w.dim(0);
  g.group = c.node.attr_int("group", 1);
  check(g.group >= 1 && g.out_ch % g.group == 0, c.where(), ": ", g.out_ch, " output channels in ", g.group, " groups");
  check(w.dim(1) * g.group == g.in_ch, c.where(), ": weight ", shape_str(w.shape()), " does not match ", g.in_ch,
        " input channels with group ", g.group);
  resolve_auto_pad(c.node.attr_string("auto_pad", "NOTSET"), g);
  check(!xzp_t.defined() || xzp_t.numel() == 1, c.where(), ": the input zero point must hold one value");
  int32_t xzp = xzp_t.defined() ? (int32_t)xzp_t.to_i64()[0] : 0;
  std::vector<int32_t> wzp = {0};
  if (wzp_t.defined()) {
    auto v = wzp_t.to_i64();
    wzp.assign(v.begin(), v.end());
  }
  bool per_ch = wzp.size() > 1;
  check(!per_ch || (int64_t)wzp.size() == g.out_ch, c.where(), ": weight zero point has ", wzp.size(),
        " values for ", g.out_ch, " output channels");
  Shape ys = {g.batch, g.out_ch};
  ys.insert(ys.end(), g.out.begin(), g.out.end());
  Tensor y = Tensor::uninitialized(DType::Int32, ys);  // conv_int32 writes every element
  visit_code_pair(x.dtype(), w.dtype(), [&](auto* xt, auto* wt) {
    using TX = std::remove_pointer_t<decltype(xt)>;
    using TW = std::remove_pointer_t<decltype(wt)>;
    conv_int32<TX, TW>(g, x.data<TX>(), xzp, w.data<TW>(), wzp.data(), per_ch, y.data<int32_t>());
  });
  return y;
}

Outs op_ConvInteger(const OpContext& c) {
  return {conv_integer(c, c.in(0), c.has(2) ? c.in(2) : Tensor(), c.in(1), c.has(3) ? c.in(3) : Tensor())};
}

// (q - zp) as int32, with a per-row zero point ([M] for a 2-D A) broadcast along rows.
Tensor centered(const Tensor& q, const Tensor* zp, bool rows, const OpContext& c) {
  check(q.dtype() == DType::UInt8 || q.dtype() == DType::Int8, c.where(), ": inputs must be uint8 or int8, got ",
        dtype_name(q.dtype()));
  Tensor qi = q.cast(DType::Int32);
  if (!zp || !zp->defined()) return qi;
  check(zp->dtype() == q.dtype(), c.where(), ": zero point is ", dtype_name(zp->dtype()), ", its input is ",
        dtype_name(q.dtype()));
  Tensor z = zp->cast(DType::Int32);
  if (rows && z.numel() > 1) z = z.reshaped({z.numel(), 1});
  return binary_op(qi, z, c, [](int32_t a, int32_t b) { return a - b; });
}

Outs op_MatMulInteger(const OpContext& c) {
  Tensor a = centered(c.in(0), c.has(2) ? &c.in(2) : nullptr, true, c);
  Tensor b = centered(c.in(1), c.has(3) ? &c.in(3) : nullptr, false, c);
  return {matmul(a, b, c.where())};
}

// Requantizes int32 accumulators: q = saturate(round(acc * (sx*sw[k]) / sy) + zy), k along `axis` when per-axis.
Tensor requantize(const Tensor& acc, float sx, const Tensor& sw, float sy, const Tensor& zy, int axis, const OpContext& c) {
  DType qt = zy.defined() ? zy.dtype() : DType::UInt8;
  check(!zy.defined() || zy.numel() == 1, c.where(), ": the output zero point must hold one value");
  int32_t z = zy.defined() ? (int32_t)zy.to_i64()[0] : 0;
  std::vector<float> ws;
  for (double v : sw.to_f64()) ws.push_back((float)v);
  int64_t inner = 1, n = (int64_t)ws.size();
  check(n >= 1, c.where(), ": the weight scale is empty");
  if (n > 1) {
    int ax = axis < 0 ? axis + acc.rank() : axis;
    check(ax >= 0 && ax < acc.rank(), c.where(), ": per-channel weight scales need an output of rank > ", ax);
    check(acc.dim(ax) == n, c.where(), ": ", n, " weight scales for ", acc.dim(ax), " output channels");
    for (int d = ax + 1; d < acc.rank(); ++d) inner *= acc.dim(d);
  }
  Tensor y(qt, acc.shape());
  const int32_t* pa = acc.data<int32_t>();
  visit_dtype(qt, [&](auto* tag) {
    using Q = std::remove_pointer_t<decltype(tag)>;
    if constexpr (std::is_same_v<Q, int8_t> || std::is_same_v<Q, uint8_t>) {
      Q* py = y.data<Q>();
      for (int64_t i = 0; i < acc.numel(); ++i) {
        float m = sx * ws[n > 1 ? (i / inner) % n : 0];
        py[i] = saturate_round<Q>((float)pa[i] * m / sy, z);
      }
    } else {
      unsupported(c.where(), ": output dtype ", dtype_name(qt));
    }
  });
  return y;
}

Outs op_QLinearConv(const OpContext& c) {
  Tensor acc = conv_integer(c, c.in(0), c.in(2), c.in(3), c.in(5));
  if (c.has(8)) {
    Tensor b = c.in(8).cast(DType::Int32);
    check(b.numel() == acc.dim(1), c.where(), ": bias has ", b.numel(), " values for ", acc.dim(1), " channels");
    int64_t S = acc.numel() / std::max<int64_t>(acc.dim(0) * acc.dim(1), 1);
    int32_t* p = acc.data<int32_t>();
    for (int64_t i = 0; i < acc.numel(); ++i)
      p[i] = (int32_t)((uint32_t)p[i] + (uint32_t)b.data<int32_t>()[(i / S) % acc.dim(1)]);
  }
  float sx = (float)first_f64(c, 1), sy = (float)first_f64(c, 6);
  return {requantize(acc, sx, c.in(4), sy, c.in(7), 1, c)};
}

Outs op_QLinearMatMul(const OpContext& c) {
  Tensor a = centered(c.in(0), &c.in(2), true, c);
  Tensor b = centered(c.in(3), &c.in(5), false, c);
  Tensor acc = matmul(a, b, c.where());
  float sa = (float)first_f64(c, 1), sy = (float)first_f64(c, 6);
  return {requantize(acc, sa, c.in(4), sy, c.in(7), -1, c)};
}

// ---- lowbit's integer program (domain "lowbit.int", made by backends/lower.h from a QDQ model) ----
// IntConv(x, w[, b]) and IntMatMul(x, w[, b]): x integer codes (zero point x_zero_point; clamped to
// [x_min, x_max] first when those attributes are set: the exact Clip of a narrow or 7-bit grid), w integer codes
// (w_zero_point per output channel or one), b int32 on the scale s_x * s_w[c]; the int32 accumulator is requantized
// per output channel c by kernels/requantize.h with attributes kind (0 float, 1 fixed point, 2 shift), rounding
// (0 half-even, 1 half-away, 2 half-up), scales / m0 / shifts (one or per channel), y_zero_point, and clamped to
// [qmin, qmax] (the output grid, narrowed by a fused Relu/Clip). The output dtype is attribute `to`.
// Float-bias form (attribute acc_scales, one or per channel: float32(s_x * s_w[c])): b is float32 real values,
// v = float(acc) * acc_scales[c] + b[c], quantized by y_scale / y_zero_point / qmin / qmax with `rounding`, or
// returned as float32 when `to` is float (kernels/requantize.h, the float-bias form).

std::vector<RequantParams> requant_params(const OpContext& c, int64_t channels) {
  auto kind = (RequantKind)c.node.attr_int("kind", 0);
  auto rounding = (TieRounding)c.node.attr_int("rounding", 0);
  std::vector<float> scales = c.node.attr_floats("scales");
  std::vector<int64_t> m0 = c.node.attr_ints("m0"), shifts = c.node.attr_ints("shifts");
  size_t n = kind == RequantKind::Float ? scales.size() : shifts.size();
  check(n == 1 || (int64_t)n == channels, c.where(), ": ", n, " requantization multipliers for ", channels, " channels");
  check(kind != RequantKind::FixedPoint || m0.size() == n, c.where(), ": m0 and shifts differ in length");
  std::vector<RequantParams> r(n);
  for (size_t i = 0; i < n; ++i) {
    r[i].kind = kind;
    r[i].rounding = rounding;
    if (kind == RequantKind::Float) r[i].scale = scales[i];
    else r[i].shift = (int)shifts[i];
    if (kind == RequantKind::FixedPoint) r[i].m0 = (int32_t)m0[i];
  }
  return r;
}

Tensor clamp_codes(const OpContext& c, const Tensor& x) {
  auto lo = c.node.attr_ints("x_min"), hi = c.node.attr_ints("x_max");
  if (lo.empty() && hi.empty()) return x;
  Tensor y = x.cast(DType::Int32);
  int32_t l = lo.empty() ? INT32_MIN : (int32_t)lo[0], h = hi.empty() ? INT32_MAX : (int32_t)hi[0];
  for (int32_t& v : std::span<int32_t>(y.data<int32_t>(), (size_t)y.numel())) v = std::min(std::max(v, l), h);
  return y.cast(x.dtype());
}

// The output codes of an integer layer, element i = code(i) (already on the grid), in the type of attribute `to`.
template <typename F>
Tensor write_codes(const Shape& shape, DType to, F code) {
  Tensor y = Tensor::uninitialized(to, shape);
  auto write = [&](auto* py) {
    for (int64_t i = 0; i < y.numel(); ++i) py[i] = (std::remove_pointer_t<decltype(py)>)code(i);
  };
  if (to == DType::UInt8) write(y.data<uint8_t>());
  else write(y.data<int8_t>());
  return y;
}

// The float-bias form: dequantized accumulator plus float bias, quantized in float or returned as float.
Tensor finish_float_bias(const OpContext& c, const Tensor& acc, int64_t ch, int64_t inner) {
  std::vector<float> sacc = c.node.attr_floats("acc_scales");
  check(sacc.size() == 1 || (int64_t)sacc.size() == ch, c.where(), ": ", sacc.size(), " accumulator scales for ", ch,
        " channels");
  const float* b = nullptr;
  if (c.has(2)) {
    check(c.in(2).dtype() == DType::Float32 && c.in(2).numel() == ch, c.where(), ": a float-bias layer's bias must "
          "be float32 with ", ch, " values");
    b = c.in(2).data<float>();
  }
  const int32_t* pa = acc.data<int32_t>();
  auto to = (DType)c.node.attr_int("to", (int64_t)DType::UInt8);
  check(to == DType::UInt8 || to == DType::Int8 || to == DType::Float32, c.where(),
        ": output type must be uint8, int8 or float32");
  auto value = [&](int64_t i) {
    int64_t k = (i / inner) % ch;
    return dequantize_acc(pa[i], sacc[sacc.size() > 1 ? (size_t)k : 0], b ? b[k] : 0.f);
  };
  if (to == DType::Float32) {
    Tensor y = Tensor::uninitialized(to, acc.shape());
    float* py = y.data<float>();
    for (int64_t i = 0; i < acc.numel(); ++i) py[i] = value(i);
    return y;
  }
  auto sy = (float)c.node.attr_float("y_scale", 0);
  check(sy > 0 && std::isfinite(sy), c.where(), ": y_scale must be finite and positive");
  auto zy = (int32_t)c.node.attr_int("y_zero_point", 0);
  auto qmin = (int32_t)c.node.attr_int("qmin", 0), qmax = (int32_t)c.node.attr_int("qmax", 255);
  auto rounding = (TieRounding)c.node.attr_int("rounding", 0);
  return write_codes(acc.shape(), to, [&](int64_t i) { return quantize_float(value(i), sy, zy, rounding, qmin, qmax); });
}

// Bias, requantization and output clamp over an int32 accumulator whose channel axis is `axis`.
Tensor finish_int(const OpContext& c, Tensor acc, int axis) {
  int ax = axis < 0 ? axis + acc.rank() : axis;
  int64_t ch = acc.dim(ax), inner = 1;
  for (int d = ax + 1; d < acc.rank(); ++d) inner *= acc.dim(d);
  if (c.node.has_attr("acc_scales")) return finish_float_bias(c, acc, ch, inner);
  int32_t* pa = acc.data<int32_t>();
  if (c.has(2)) {
    const Tensor& b = c.in(2);
    check(b.dtype() == DType::Int32 && b.numel() == ch, c.where(), ": bias must be int32 with ", ch, " values");
    const int32_t* pb = b.data<int32_t>();
    const int64_t runs = inner == 0 ? 0 : acc.numel() / inner;
#pragma omp parallel for schedule(static) if (acc.numel() > 65536)
    for (int64_t r = 0; r < runs; ++r) {
      const auto add = (uint32_t)pb[r % ch];
      int32_t* run = pa + r * inner;
      for (int64_t i = 0; i < inner; ++i) run[i] = (int32_t)((uint32_t)run[i] + add);  // wraps like int32 hardware
    }
  }
  auto rq = requant_params(c, ch);
  auto zy = (int32_t)c.node.attr_int("y_zero_point", 0);
  auto qmin = (int32_t)c.node.attr_int("qmin", 0), qmax = (int32_t)c.node.attr_int("qmax", 255);
  auto to = (DType)c.node.attr_int("to", (int64_t)DType::UInt8);
  check(to == DType::UInt8 || to == DType::Int8, c.where(), ": output type must be uint8 or int8");
  // Runs of `inner` accumulators share a channel's multiplier (kernels/requantize.h's requantize_run).
  Tensor y = Tensor::uninitialized(to, acc.shape());
  const int64_t runs = inner == 0 ? 0 : acc.numel() / inner;
  auto write = [&](auto* py) {
#pragma omp parallel for schedule(static) if (acc.numel() > 65536)
    for (int64_t r = 0; r < runs; ++r)
      requantize_run(pa + r * inner, inner, rq[rq.size() > 1 ? r % ch : 0], zy, qmin, qmax, py + r * inner);
  };
  if (to == DType::UInt8) write(y.data<uint8_t>());
  else write(y.data<int8_t>());
  return y;
}

Outs op_IntConv(const OpContext& c) {
  Tensor x = clamp_codes(c, c.in(0));
  Tensor xz = Tensor::scalar<int32_t>((int32_t)c.node.attr_int("x_zero_point", 0));
  auto wz = c.node.attr_ints("w_zero_point", {0});
  Tensor wzt = Tensor::from_vector<int32_t>({(int64_t)wz.size()}, std::vector<int32_t>(wz.begin(), wz.end()));
  return {finish_int(c, conv_integer(c, x, xz, c.in(1), wzt), 1)};
}

// x [..., K] codes times a constant 2-D weight [K, N] of codes: one integer GEMM over all rows of x
// (kernels/gemm.h's gemm_int32, whose fast path is kernels/int_gemm.h).
template <typename TX, typename TW>
Tensor matmul_codes(const Tensor& x, int32_t zx, const Tensor& w, const std::vector<int32_t>& zw) {
  const int64_t K = w.dim(0), N = w.dim(1), M = x.numel() / std::max<int64_t>(K, 1);
  Shape out = x.shape();
  out.back() = N;
  Tensor acc = Tensor::uninitialized(DType::Int32, out);
  gemm_int32<TX, TW>(M, N, K, x.data<TX>(), zx, w.data<TW>(), zw.data(), zw.size() > 1, acc.data<int32_t>());
  return acc;
}

Outs op_IntMatMul(const OpContext& c) {
  Tensor x = clamp_codes(c, c.in(0));
  const Tensor& w = c.in(1);
  const auto zx = (int32_t)c.node.attr_int("x_zero_point", 0);
  auto wz = c.node.attr_ints("w_zero_point", {0});
  auto is8 = [](DType t) { return t == DType::Int8 || t == DType::UInt8; };
  if (w.rank() == 2 && x.rank() >= 2 && x.dim(-1) == w.dim(0) && w.dim(0) > 0 && is8(x.dtype()) && is8(w.dtype()) &&
      (wz.size() == 1 || (int64_t)wz.size() == w.dim(1))) {
    std::vector<int32_t> zw(wz.begin(), wz.end());
    Tensor acc;
    visit_code_pair(x.dtype(), w.dtype(), [&](auto* xt, auto* wt) {
      acc = matmul_codes<std::remove_pointer_t<decltype(xt)>, std::remove_pointer_t<decltype(wt)>>(x, zx, w, zw);
    });
    return {finish_int(c, acc, -1)};
  }
  Tensor xz = Tensor::scalar<int32_t>(zx);
  Tensor xi = binary_op(x.cast(DType::Int32), xz, c, [](int32_t a, int32_t b) { return a - b; });
  Tensor wzt = Tensor::from_vector<int32_t>({(int64_t)wz.size()}, std::vector<int32_t>(wz.begin(), wz.end()));
  Tensor wi = binary_op(c.in(1).cast(DType::Int32), wzt, c, [](int32_t a, int32_t b) { return a - b; });
  return {finish_int(c, matmul(xi, wi, c.where()), -1)};
}

// IntSoftmax(x): softmax of 8-bit codes to 8-bit codes of the same type with an exponential table
// (kernels/int_softmax.h; the input's zero point cancels). Attributes: x_scale, y_scale, y_zero_point, axis, and
// coerce = 1 for the opset < 13 semantics of the Softmax it replaces (everything from axis on is one row).
Outs op_IntSoftmax(const OpContext& c) {
  const Tensor& x = c.in(0);
  check(x.dtype() == DType::UInt8 || x.dtype() == DType::Int8, c.where(), ": input must be uint8 or int8 codes, got ",
        dtype_name(x.dtype()));
  float sx = c.node.attr_float("x_scale", 0), sy = c.node.attr_float("y_scale", 0);
  check(sx > 0 && std::isfinite(sx) && sy > 0 && std::isfinite(sy), c.where(), ": x_scale and y_scale must be positive");
  int64_t r = x.rank(), axis = norm_axis(c.node.attr_int("axis", -1), r, c), outer = 1, d = 1, inner = 1;
  bool coerce = c.node.attr_int("coerce", 0) != 0;
  for (int64_t i = 0; i < r; ++i) (i < axis ? outer : i == axis || coerce ? d : inner) *= x.dim(i);
  Tensor y = Tensor::uninitialized(x.dtype(), x.shape());
  if (x.numel() == 0) return {y};
  SoftmaxTable t = make_softmax_table(sx, d);
  auto zy = (int32_t)c.node.attr_int("y_zero_point", 0);
  if (x.dtype() == DType::UInt8) softmax_exp_table(x.data<uint8_t>(), y.data<uint8_t>(), outer, d, inner, t, sy, zy);
  else softmax_exp_table(x.data<int8_t>(), y.data<int8_t>(), outer, d, inner, t, sy, zy);
  return {y};
}

// lowbit.FakeQuant(x, scale, zero_point) -> y: the quantizer of quantization-aware training, one op whose arithmetic
// is QuantizeLinear followed by DequantizeLinear (and the Clip the QDQ export adds for a grid narrower than its
// container), so that a trained model and its QDQ export give the same values:
//   q = clamp(nearbyint(x / s) + z', qmin, qmax),  y = (q - z') * s,  z' = clamp(nearbyint(z), qmin, qmax)
// x / s in float32, ties to even; NaN gives the zero point. Attributes: qmin, qmax (the grid), axis (the channel
// axis when scale has more than one value), grad_scale (LSQ's gradient scale, read by the gradient rule only).
// The zero point is a float (a learnable offset); it is rounded where it is used.
Outs op_FakeQuant(const OpContext& c) {
  const Tensor& x = c.in(0);
  check(x.dtype() == DType::Float32, c.where(), ": input must be float32, got ", dtype_name(x.dtype()));
  Tensor scale = c.in(1).cast(DType::Float32), zp = c.in(2).cast(DType::Float32);
  check(zp.numel() == scale.numel(), c.where(), ": scale and zero point sizes differ");
  int64_t qmin = c.node.attr_int("qmin", 0), qmax = c.node.attr_int("qmax", 255);
  check(qmin < qmax && qmin >= -(1 << 16) && qmax <= (1 << 16), c.where(), ": bad grid [", qmin, ", ", qmax, "]");
  AxisIndex ax = axis_index(c, x, scale);
  const float* ps = scale.data<float>();
  const float* pz = zp.data<float>();
  for (int64_t i = 0; i < scale.numel(); ++i)
    check(ps[i] > 0 && std::isfinite(ps[i]), c.where(), ": scale ", i, " is ", ps[i], "; scales must be positive");
  // [outer, channels, inner] around the channel axis (one channel for per-tensor).
  int64_t channels = scale.numel(), inner = ax.per_axis ? ax.inner : x.numel(), outer = 1;
  if (ax.per_axis) outer = x.numel() / std::max<int64_t>(1, channels * inner);
  std::vector<float> zr((size_t)channels);
  for (int64_t k = 0; k < channels; ++k)  // the zero point rounded and kept on the grid, as the export stores it
    zr[(size_t)k] = std::min(std::max(std::nearbyint(pz[k]), (float)qmin), (float)qmax);
  Tensor y = Tensor::uninitialized(DType::Float32, x.shape());
  if (x.numel() > 0)
    fake_quant_f32(x.data<float>(), y.data<float>(), outer, channels, inner, ps, zr.data(), (float)qmin, (float)qmax);
  return {y};
}

}  // namespace

void register_quant_ops(OpRegistry& r) {
  r.add({"FakeQuant", "lowbit", 1, op_FakeQuant});
  r.add({"IntConv", "lowbit.int", 1, op_IntConv});
  r.add({"IntMatMul", "lowbit.int", 1, op_IntMatMul});
  r.add({"IntSoftmax", "lowbit.int", 1, op_IntSoftmax});
  r.add({"QuantizeLinear", "", 10, op_QuantizeLinear});
  r.add({"DequantizeLinear", "", 10, op_DequantizeLinear});
  r.add({"DynamicQuantizeLinear", "", 11, op_DynamicQuantizeLinear});
  r.add({"ConvInteger", "", 10, op_ConvInteger});
  r.add({"MatMulInteger", "", 10, op_MatMulInteger});
  r.add({"QLinearConv", "", 10, op_QLinearConv});
  r.add({"QLinearMatMul", "", 10, op_QLinearMatMul});
}

}  // namespace lowbit
