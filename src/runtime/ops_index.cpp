// Index-driven ops: TopK, CumSum, Trilu, OneHot, EyeLike, GatherND, ScatterND, ScatterElements, NonZero.
// They move elements by computed indices, so most work on every dtype by copying bytes.
#include <algorithm>
#include <cstring>
#include <numeric>

#include "runtime/op_util.h"

namespace lowbit {

namespace {

using Outs = std::vector<Tensor>;

std::byte* at(Tensor& t, int64_t i) { return static_cast<std::byte*>(t.raw_mut()) + i * (int64_t)dtype_size(t.dtype()); }
const std::byte* at(const Tensor& t, int64_t i) { return static_cast<const std::byte*>(t.raw()) + i * (int64_t)dtype_size(t.dtype()); }

Outs op_TopK(const OpContext& c) {
  const Tensor& x = c.in(0);
  int64_t k = first_i64(c, 1);
  int64_t axis = norm_axis(c.node.attr_int("axis", -1), x.rank(), c);
  bool largest = c.node.attr_int("largest", 1) != 0, sorted = c.node.attr_int("sorted", 1) != 0;
  int64_t outer, n, inner;
  split_dims(x.shape(), axis, outer, n, inner);
  check(k >= 0 && k <= n, c.where(), ": k = ", k, " for an axis of ", n);
  Shape os = x.shape();
  os[axis] = k;
  Tensor vals(x.dtype(), os), idx(DType::Int64, os);
  auto v = x.to_f64();
  std::vector<int64_t> order((size_t)n);
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      std::iota(order.begin(), order.end(), 0);
      auto key = [&](int64_t a) { return v[(size_t)((o * n + a) * inner + i)]; };
      // Ties keep the lower index first (ONNX: stable with respect to index).
      auto cmp = [&](int64_t a, int64_t b) { return largest ? (key(a) > key(b) || (key(a) == key(b) && a < b))
                                                             : (key(a) < key(b) || (key(a) == key(b) && a < b)); };
      std::partial_sort(order.begin(), order.begin() + k, order.end(), cmp);
      if (!sorted) std::sort(order.begin(), order.begin() + k);
      for (int64_t j = 0; j < k; ++j) {
        int64_t src = (o * n + order[(size_t)j]) * inner + i, dst = (o * k + j) * inner + i;
        std::memcpy(at(vals, dst), at(x, src), dtype_size(x.dtype()));
        idx.data<int64_t>()[dst] = order[(size_t)j];
      }
    }
  return {vals, idx};
}

Outs op_CumSum(const OpContext& c) {
  const Tensor& x = c.in(0);
  int64_t axis = norm_axis(first_i64(c, 1), x.rank(), c);
  bool exclusive = c.node.attr_int("exclusive", 0) != 0, reverse = c.node.attr_int("reverse", 0) != 0;
  int64_t outer, n, inner;
  split_dims(x.shape(), axis, outer, n, inner);
  Tensor y = x.clone();
  visit_dtype(x.dtype(), [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    if constexpr (is_native_num<T>::value) {
      const T* px = x.data<T>();
      T* py = y.data<T>();
      for (int64_t o = 0; o < outer; ++o)
        for (int64_t i = 0; i < inner; ++i) {
          T acc = 0;
          for (int64_t j0 = 0; j0 < n; ++j0) {
            int64_t j = reverse ? n - 1 - j0 : j0;
            int64_t p = (o * n + j) * inner + i;
            if (exclusive) {
              py[p] = acc;
              acc = wrap_add(acc, px[p]);
            } else {
              acc = wrap_add(acc, px[p]);
              py[p] = acc;
            }
          }
        }
    } else {
      unsupported(c.where(), ": CumSum on ", dtype_name(x.dtype()));
    }
  });
  return {y};
}

Outs op_Trilu(const OpContext& c) {
  const Tensor& x = c.in(0);
  check(x.rank() >= 2, c.where(), ": input must have rank >= 2");
  int64_t k = c.has(1) ? first_i64(c, 1) : 0;
  bool upper = c.node.attr_int("upper", 1) != 0;
  int64_t R = x.dim(-2), C = x.dim(-1), mats = (R * C) != 0 ? x.numel() / (R * C) : 0;
  Tensor y(x.dtype(), x.shape());  // zero-filled
  size_t es = dtype_size(x.dtype());
  for (int64_t m = 0; m < mats; ++m)
    for (int64_t i = 0; i < R; ++i)
      for (int64_t j = 0; j < C; ++j) {
        bool keep = upper ? (j - i >= k) : (j - i <= k);
        if (keep) std::memcpy(at(y, (m * R + i) * C + j), at(x, (m * R + i) * C + j), es);
      }
  return {y};
}

Outs op_OneHot(const OpContext& c) {
  auto idx = c.in(0).to_i64();
  double depth_value = first_f64(c, 1);
  check(depth_value >= 1 && depth_value < 9.0e18, c.where(), ": depth ", depth_value, " must be a positive count below 2^63");
  int64_t depth = (int64_t)depth_value;
  const Tensor& values = c.in(2);
  check(values.numel() == 2, c.where(), ": values must hold [off, on]");
  int64_t r = c.in(0).rank() + 1;
  int64_t axis = norm_axis(c.node.attr_int("axis", -1), r, c);
  Shape os = c.in(0).shape();
  os.insert(os.begin() + axis, depth);
  Tensor y(values.dtype(), os);
  int64_t outer, n, inner;
  split_dims(os, axis, outer, n, inner);
  size_t es = dtype_size(values.dtype());
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      int64_t want = idx[(size_t)(o * inner + i)];
      if (want < 0) want += depth;
      for (int64_t j = 0; j < n; ++j) std::memcpy(at(y, (o * n + j) * inner + i), at(values, j == want ? 1 : 0), es);
    }
  return {y};
}

Outs op_EyeLike(const OpContext& c) {
  const Tensor& x = c.in(0);
  check(x.rank() == 2, c.where(), ": input must be 2-D");
  DType dt = c.node.has_attr("dtype") ? dtype_from_onnx((int32_t)c.node.attr_int("dtype", 1)) : x.dtype();
  int64_t k = c.node.attr_int("k", 0);
  std::vector<double> v((size_t)x.numel(), 0.0);
  for (int64_t i = 0; i < x.dim(0); ++i)
    if (k >= -i && k < x.dim(1) - i) v[(size_t)(i * x.dim(1) + i + k)] = 1.0;  // no i + k: k may be INT64_MAX
  return {Tensor::from_vector<double>(x.shape(), v).cast(dt)};
}

Outs op_GatherND(const OpContext& c) {
  const Tensor& x = c.in(0);
  const Tensor& ind = c.in(1);
  int64_t b = c.node.attr_int("batch_dims", 0), q = ind.rank(), r = x.rank();
  check(q >= 1 && b >= 0 && b < q && b <= r, c.where(), ": batch_dims ", b, " for indices of rank ", q,
        " and data of rank ", r);
  for (int64_t d = 0; d < b; ++d)
    check(ind.shape()[d] == x.shape()[d], c.where(), ": batch dimension ", d, " differs between data ",
          shape_str(x.shape()), " and indices ", shape_str(ind.shape()));
  int64_t m = ind.dim(-1);
  check(b + m <= r, c.where(), ": indices address more dims than the data has");
  Shape os(ind.shape().begin(), ind.shape().end() - 1);
  os.insert(os.end(), x.shape().begin() + b + m, x.shape().end());
  int64_t slice = 1, batch = 1;
  for (int64_t d = b + m; d < r; ++d) slice *= x.shape()[d];
  for (int64_t d = 0; d < b; ++d) batch *= x.shape()[d];
  auto st = shape_strides(x.shape());
  auto iv = ind.to_i64();
  int64_t per_batch = q > 1 ? shape_numel(Shape(ind.shape().begin() + b, ind.shape().end() - 1)) : 1;
  Tensor y(x.dtype(), os);
  size_t es = dtype_size(x.dtype());
  int64_t batch_stride = b ? st[b - 1] : 0;
  for (int64_t bi = 0; bi < batch; ++bi)
    for (int64_t t = 0; t < per_batch; ++t) {
      int64_t row = bi * per_batch + t, off = bi * batch_stride;
      for (int64_t j = 0; j < m; ++j) {
        int64_t v = iv[(size_t)(row * m + j)], dim = x.shape()[b + j];
        if (v < 0) v += dim;
        check(v >= 0 && v < dim, c.where(), ": index ", iv[(size_t)(row * m + j)], " out of range");
        off += v * st[b + j];
      }
      std::memcpy(at(y, row * slice), at(x, off), es * slice);
    }
  return {y};
}

// Shared reduction for the scatter ops.
void scatter_combine(std::byte* dst, const std::byte* src, DType dt, const std::string& red, const OpContext& c) {
  if (red == "none") {
    std::memcpy(dst, src, dtype_size(dt));
    return;
  }
  visit_dtype(dt, [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    if constexpr (is_native_num<T>::value) {
      T a, b;
      std::memcpy(&a, dst, sizeof(T));
      std::memcpy(&b, src, sizeof(T));
      T r = red == "add" ? wrap_add(a, b) : red == "mul" ? wrap_mul(a, b) : red == "max" ? std::max(a, b) : std::min(a, b);
      std::memcpy(dst, &r, sizeof(T));
    } else {
      unsupported(c.where(), ": reduction '", red, "' on ", dtype_name(dt));
    }
  });
}

Outs op_ScatterND(const OpContext& c) {
  const Tensor& x = c.in(0);
  const Tensor& ind = c.in(1);
  const Tensor& upd = c.in(2);
  std::string red = c.node.attr_string("reduction", "none");
  check(ind.rank() >= 1, c.where(), ": indices must have rank >= 1");
  Tensor y = x.clone();
  int64_t m = ind.dim(-1), rows = ind.numel() / std::max<int64_t>(m, 1), slice = 1;
  check(m <= x.rank(), c.where(), ": index tuples of length ", m, " for data of rank ", x.rank());
  for (int d = (int)m; d < x.rank(); ++d) slice *= x.dim(d);
  check(upd.dtype() == x.dtype() && upd.numel() == rows * slice, c.where(), ": updates ", shape_str(upd.shape()), " (",
        dtype_name(upd.dtype()), ") do not fit ", rows, " slices of ", slice, " ", dtype_name(x.dtype()), " elements");
  auto st = shape_strides(x.shape());
  auto iv = ind.to_i64();
  for (int64_t row = 0; row < rows; ++row) {
    int64_t off = 0;
    for (int64_t j = 0; j < m; ++j) {
      int64_t v = iv[(size_t)(row * m + j)], dim = x.dim((int)j);
      if (v < 0) v += dim;
      check(v >= 0 && v < dim, c.where(), ": index out of range");
      off += v * st[j];
    }
    for (int64_t e = 0; e < slice; ++e) scatter_combine(at(y, off + e), at(upd, row * slice + e), x.dtype(), red, c);
  }
  return {y};
}

Outs op_ScatterElements(const OpContext& c) {
  const Tensor& x = c.in(0);
  const Tensor& ind = c.in(1);
  const Tensor& upd = c.in(2);
  int64_t r = x.rank(), axis = norm_axis(c.node.attr_int("axis", 0), r, c);
  std::string red = c.node.attr_string("reduction", "none");
  check(ind.shape() == upd.shape(), c.where(), ": updates ", shape_str(upd.shape()), " must have the shape of indices ",
        shape_str(ind.shape()));
  check(ind.rank() == r, c.where(), ": indices have rank ", ind.rank(), ", data has rank ", r);
  for (int64_t d = 0; d < r; ++d)
    check(d == axis || ind.shape()[d] <= x.shape()[d], c.where(), ": indices ", shape_str(ind.shape()),
          " exceed data ", shape_str(x.shape()), " on axis ", d);
  check(upd.dtype() == x.dtype(), c.where(), ": updates are ", dtype_name(upd.dtype()), ", data is ", dtype_name(x.dtype()));
  Tensor y = x.clone();
  auto st = shape_strides(x.shape());
  auto iv = ind.to_i64();
  std::vector<int64_t> coord((size_t)r, 0);
  for (int64_t i = 0; i < ind.numel(); ++i) {
    int64_t off = 0;
    for (int64_t d = 0; d < r; ++d) {
      int64_t v = coord[(size_t)d];
      if (d == axis) {
        v = iv[(size_t)i] < 0 ? iv[(size_t)i] + x.shape()[d] : iv[(size_t)i];
        check(v >= 0 && v < x.shape()[d], c.where(), ": index ", iv[(size_t)i], " out of range");
      }
      off += v * st[d];
    }
    scatter_combine(at(y, off), at(upd, i), x.dtype(), red, c);
    for (int64_t d = r - 1; d >= 0; --d) {
      if (++coord[(size_t)d] < ind.shape()[d]) break;
      coord[(size_t)d] = 0;
    }
  }
  return {y};
}

Outs op_NonZero(const OpContext& c) {
  const Tensor& x = c.in(0);
  auto v = x.to_f64();
  int64_t r = std::max(1, x.rank());
  std::vector<int64_t> hits;
  for (size_t i = 0; i < v.size(); ++i)
    if (v[i] != 0) hits.push_back((int64_t)i);
  Tensor y(DType::Int64, {r, (int64_t)hits.size()});
  auto st = shape_strides(x.rank() ? x.shape() : Shape{1});
  for (size_t h = 0; h < hits.size(); ++h)
    for (int64_t d = 0; d < r; ++d) y.data<int64_t>()[d * (int64_t)hits.size() + (int64_t)h] = (hits[h] / st[d]) % (x.rank() ? x.shape()[d] : 1);
  return {y};
}

}  // namespace

void register_index_ops(OpRegistry& r) {
  struct E { const char* name; ComputeFn fn; int since; };
  const E table[] = {
      {"TopK", op_TopK, 10}, {"CumSum", op_CumSum, 11}, {"Trilu", op_Trilu, 14}, {"OneHot", op_OneHot, 9},
      {"EyeLike", op_EyeLike, 9}, {"GatherND", op_GatherND, 11}, {"ScatterND", op_ScatterND, 11},
      {"ScatterElements", op_ScatterElements, 11}, {"NonZero", op_NonZero, 9},
  };
  for (auto& e : table) r.add({e.name, "", e.since, e.fn});
}

}  // namespace lowbit
