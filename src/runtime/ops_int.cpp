// The integer engine's Add, Mul, pooling and concatenation on 8-bit codes (ops of domain lowbit.int that
// backends/lower.cpp emits; the Conv/MatMul/Softmax ones are in ops_quant.cpp).
#include <algorithm>
#include <cmath>

#include "kernels/int_pool.h"
#include "kernels/requantize.h"
#include "runtime/conv_geom.h"
#include "runtime/op_util.h"

namespace lowbit {

namespace {

using Outs = std::vector<Tensor>;

DType code_type(const OpContext& c, const Tensor& t, size_t i) {
  check(t.dtype() == DType::UInt8 || t.dtype() == DType::Int8, c.where(), ": input ", i,
        " must be uint8 or int8 codes, got ", dtype_name(t.dtype()));
  return t.dtype();
}

DType out_type(const OpContext& c) {
  auto to = (DType)c.node.attr_int("to", (int64_t)DType::UInt8);
  check(to == DType::UInt8 || to == DType::Int8, c.where(), ": output type must be uint8 or int8");
  return to;
}

// int32 codes (already on the output grid) to a tensor of type `to`.
Tensor narrow_codes(const std::vector<int32_t>& v, const Shape& shape, DType to) {
  Tensor y = Tensor::uninitialized(to, shape);
  if (to == DType::UInt8) std::copy(v.begin(), v.end(), y.data<uint8_t>());
  else std::copy(v.begin(), v.end(), y.data<int8_t>());
  return y;
}

// IntAvgPool(x): average pooling of 8-bit codes (kernels/int_pool.h). Attributes: the AveragePool's own
// (kernel_shape, strides, pads, auto_pad, ceil_mode, count_include_pad) or global = 1 (GlobalAveragePool);
// x_scale, x_zero_point, y_scale, y_zero_point, qmin, qmax, to, kind, rounding, and float_sum = 1 for ONNX
// Runtime's float form of a local window.
Outs op_IntAvgPool(const OpContext& c) {
  const Tensor& x = c.in(0);
  DType xt = code_type(c, x, 0);
  check(x.rank() >= 3, c.where(), ": input must be [N, C, spatial...], got ", shape_str(x.shape()));
  AvgPoolQuant q;
  q.kind = (RequantKind)c.node.attr_int("kind", 0);
  q.rounding = (TieRounding)c.node.attr_int("rounding", 0);
  q.sx = c.node.attr_float("x_scale", 0);
  q.sy = c.node.attr_float("y_scale", 0);
  check(q.sx > 0 && std::isfinite(q.sx) && q.sy > 0 && std::isfinite(q.sy), c.where(),
        ": x_scale and y_scale must be finite and positive");
  q.zx = (int32_t)c.node.attr_int("x_zero_point", 0);
  q.zy = (int32_t)c.node.attr_int("y_zero_point", 0);
  q.qmin = (int32_t)c.node.attr_int("qmin", 0);
  q.qmax = (int32_t)c.node.attr_int("qmax", 255);
  q.float_sum = c.node.attr_int("float_sum", 0) != 0;
  ConvGeom g;
  Shape xs = x.shape();
  if (c.node.attr_int("global", 0)) {
    std::vector<int64_t> spatial(xs.begin() + 2, xs.end());
    g.batch = xs[0];
    g.in_ch = g.out_ch = xs[1];
    g.in = g.kernel = spatial;
    g.out.assign(spatial.size(), 1);
    g.stride.assign(spatial.size(), 1);
    g.dilation.assign(spatial.size(), 1);
    g.pad_begin.assign(spatial.size(), 0);
    g.pad_end.assign(spatial.size(), 0);
  } else {
    g = node_window_geom(c.node, xs, c.node.attr_ints("kernel_shape"));
    g.out_ch = g.in_ch;
    resolve_auto_pad(c.node.attr_string("auto_pad", "NOTSET"), g, c.node.attr_int("ceil_mode", 0) != 0);
  }
  Shape ys = {g.batch, g.in_ch};
  ys.insert(ys.end(), g.out.begin(), g.out.end());
  std::vector<int32_t> y((size_t)shape_numel(ys));
  bool include_pad = c.node.attr_int("count_include_pad", 0) != 0;
  if (!y.empty()) {
    if (xt == DType::UInt8) avg_pool_codes(g, x.data<uint8_t>(), y.data(), include_pad, q, c.where());
    else avg_pool_codes(g, x.data<int8_t>(), y.data(), include_pad, q, c.where());
  }
  return {narrow_codes(y, ys, out_type(c))};
}

// IntConcat(x0, x1, ...): Concat of 8-bit codes onto one output grid. Attribute `tables`: for each input 256
// output codes (kernels/requantize.h rescale_table, indexed by code - lowest code of the input's type) or, where
// `copy` is 1 for the input (its grid is the output's), nothing; `axis` as Concat's; `to` the output type.
Outs op_IntConcat(const OpContext& c) {
  auto copy = c.node.attr_ints("copy");
  auto tables = c.node.attr_ints("tables");
  check(copy.size() == c.num_inputs(), c.where(), ": ", copy.size(), " copy flags for ", c.num_inputs(), " inputs");
  DType to = out_type(c);
  std::vector<Tensor> moved(c.num_inputs());
  std::vector<const Tensor*> ins;
  size_t t = 0;
  for (size_t i = 0; i < c.num_inputs(); ++i) {
    const Tensor& x = c.in(i);
    DType xt = code_type(c, x, i);
    if (copy[i]) {
      check(xt == to, c.where(), ": input ", i, " is copied but is ", dtype_name(xt), ", not ", dtype_name(to));
      ins.push_back(&x);
      continue;
    }
    check(tables.size() >= t + 256, c.where(), ": no table for input ", i);
    const int64_t* table = tables.data() + t;
    t += 256;
    int32_t lo = xt == DType::Int8 ? -128 : 0;
    std::vector<int32_t> v((size_t)x.numel());
    if (xt == DType::UInt8)
      for (size_t k = 0; k < v.size(); ++k) v[k] = (int32_t)table[x.data<uint8_t>()[k]];
    else
      for (size_t k = 0; k < v.size(); ++k) v[k] = (int32_t)table[x.data<int8_t>()[k] - lo];
    moved[i] = narrow_codes(v, x.shape(), to);
    ins.push_back(&moved[i]);
  }
  check(t == tables.size(), c.where(), ": ", tables.size() / 256, " tables for ", t / 256, " rescaled inputs");
  return {concat(ins, c.node.attr_int("axis", 0), c)};
}

// IntAdd(a, b) / IntMul(a, b): the sum or product of two quantized tensors' codes (numpy broadcasting) onto the
// output grid by kernels/requantize.h's requantize_add / requantize_mul. Attributes: scales = [s_a, s_b, s_y],
// a_zero_point, b_zero_point, y_zero_point, qmin, qmax, to, kind, rounding.
template <typename Params, typename Make, typename Apply>
Outs binary_codes(const OpContext& c, Make make, Apply apply) {
  auto sc = c.node.attr_floats("scales");
  check(sc.size() == 3, c.where(), ": scales must be [s_a, s_b, s_y]");
  Params p = make(sc[0], sc[1], sc[2], (RequantKind)c.node.attr_int("kind", 0),
                  (TieRounding)c.node.attr_int("rounding", 0), c.where());
  p.za = (int32_t)c.node.attr_int("a_zero_point", 0);
  p.zb = (int32_t)c.node.attr_int("b_zero_point", 0);
  p.zy = (int32_t)c.node.attr_int("y_zero_point", 0);
  p.qmin = (int32_t)c.node.attr_int("qmin", 0);
  p.qmax = (int32_t)c.node.attr_int("qmax", 255);
  DType to = out_type(c);
  for (size_t i = 0; i < 2; ++i) code_type(c, c.in(i), i);
  const Tensor &a = c.in(0), &b = c.in(1);
  if (std::max(a.numel(), b.numel()) < 4 * 65536)
    return {binary_op(a.cast(DType::Int32), b.cast(DType::Int32), c, [&](int32_t u, int32_t v) { return apply(u, v, p); })
                .cast(to)};
  // Large tensors: every pair of 8-bit codes through the arithmetic once (a 256 x 256 table), then a lookup per
  // element; the same codes by construction.
  const int32_t oa = a.dtype() == DType::Int8 ? -128 : 0, ob = b.dtype() == DType::Int8 ? -128 : 0;
  std::vector<int32_t> table(256 * 256);
#pragma omp parallel for schedule(static)
  for (int32_t u = 0; u < 256; ++u)
    for (int32_t v = 0; v < 256; ++v) table[(size_t)(u * 256 + v)] = apply(u + oa, v + ob, p);
  Tensor y = binary_op(a.cast(DType::Int32), b.cast(DType::Int32), c,
                       [&](int32_t u, int32_t v) { return table[(size_t)((u - oa) * 256 + (v - ob))]; });
  return {y.cast(to)};
}

Outs op_IntAdd(const OpContext& c) { return binary_codes<AddRequant>(c, make_add_requant, requantize_add); }
Outs op_IntMul(const OpContext& c) { return binary_codes<MulRequant>(c, make_mul_requant, requantize_mul); }

}  // namespace

void register_int_ops(OpRegistry& r) {
  r.add({"IntAdd", "lowbit.int", 1, op_IntAdd});
  r.add({"IntMul", "lowbit.int", 1, op_IntMul});
  r.add({"IntAvgPool", "lowbit.int", 1, op_IntAvgPool});
  r.add({"IntConcat", "lowbit.int", 1, op_IntConcat});
}

}  // namespace lowbit
