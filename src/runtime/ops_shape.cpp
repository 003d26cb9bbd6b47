// Shape and data-movement ops. Most are one call to remap(): each output coordinate along each dim maps to an
// element offset in the input (or to the pad value), so they work for every dtype by copying bytes.
#include <algorithm>
#include <cstring>
#include <limits>
#include <numeric>

#include "core/checked.h"
#include "runtime/op_util.h"

namespace lowbit {

// Concatenation of tensors of one dtype along `axis` (negative: from the end); errors name the node.
Tensor concat(const std::vector<const Tensor*>& ins, int64_t axis_attr, const OpContext& c) {
  check(!ins.empty(), c.where(), ": nothing to concatenate");
  const Tensor& x0 = *ins[0];
  int64_t r = x0.rank();
  int64_t axis = norm_axis(axis_attr, r, c);
  Shape out = x0.shape();
  out[axis] = 0;
  for (size_t i = 0; i < ins.size(); ++i) {
    const Tensor& t = *ins[i];
    check(t.dtype() == x0.dtype() && t.rank() == r, c.where(), ": input ", i, " has dtype/rank different from input 0");
    for (int64_t d = 0; d < r; ++d)
      check(d == axis || t.shape()[d] == x0.shape()[d], c.where(), ": input ", i, " shape ", shape_str(t.shape()),
            " does not match ", shape_str(x0.shape()), " outside axis ", axis);
    out[axis] += t.shape()[axis];
  }
  Tensor y(x0.dtype(), out);
  int64_t outer = 1;
  for (int64_t d = 0; d < axis; ++d) outer *= out[d];
  size_t es = dtype_size(x0.dtype());
  int64_t row = y.numel() / std::max<int64_t>(outer, 1) * (int64_t)es;
  int64_t off = 0;
  for (const Tensor* t : ins) {
    int64_t chunk = outer ? t->numel() / outer * (int64_t)es : 0;
    for (int64_t o = 0; o < outer && chunk; ++o)
      std::memcpy(static_cast<std::byte*>(y.raw_mut()) + o * row + off, static_cast<const std::byte*>(t->raw()) + o * chunk, chunk);
    off += chunk;
  }
  return y;
}

namespace {

using Outs = std::vector<Tensor>;
constexpr int64_t kPad = std::numeric_limits<int64_t>::min();

// out[coords] = x[sum_d maps[d][coords[d]]], or *pad when any map entry is kPad.
Tensor remap(const Tensor& x, const Shape& out, const std::vector<std::vector<int64_t>>& maps, const void* pad = nullptr) {
  Tensor y = pad ? Tensor(x.dtype(), out) : Tensor::uninitialized(x.dtype(), out);  // every element is written
  int64_t total = y.numel();
  if (total == 0) return y;
  size_t es = dtype_size(x.dtype());
  auto* src = static_cast<const std::byte*>(x.raw());
  auto* dst = static_cast<std::byte*>(y.raw_mut());
  int r = (int)out.size();
  if (r == 0) {
    std::memcpy(dst, src, es);
    return y;
  }
  std::vector<int64_t> idx(r, 0);
  int64_t inner = out[r - 1];
  const auto& last = maps[r - 1];
  bool any_pad = false;
  for (auto& m : maps) any_pad = any_pad || std::find(m.begin(), m.end(), kPad) != m.end();
  if (!any_pad) {
    // No padding: each output row is a gather (or, when the last map is contiguous, one copy) from the source.
    bool contiguous = true;
    for (int64_t j = 1; j < inner && contiguous; ++j) contiguous = last[j] == last[0] + j;
    int64_t rows = total / inner;
#pragma omp parallel for schedule(static) if (total > 65536)
    for (int64_t q = 0; q < rows; ++q) {
      int64_t base = 0, rem = q;
      for (int d = r - 2; d >= 0; --d) {
        base += maps[d][rem % out[d]];
        rem /= out[d];
      }
      std::byte* o = dst + q * inner * (int64_t)es;
      if (contiguous) {
        std::memcpy(o, src + (base + last[0]) * (int64_t)es, (size_t)inner * es);
      } else if (es == 4) {
        auto* o4 = reinterpret_cast<uint32_t*>(o);
        auto* s4 = reinterpret_cast<const uint32_t*>(src) + base;
        for (int64_t j = 0; j < inner; ++j) o4[j] = s4[last[j]];
      } else if (es == 8) {
        auto* o8 = reinterpret_cast<uint64_t*>(o);
        auto* s8 = reinterpret_cast<const uint64_t*>(src) + base;
        for (int64_t j = 0; j < inner; ++j) o8[j] = s8[last[j]];
      } else {
        for (int64_t j = 0; j < inner; ++j) std::memcpy(o + j * (int64_t)es, src + (base + last[j]) * (int64_t)es, es);
      }
    }
    return y;
  }
  for (int64_t i = 0; i < total; i += inner) {
    int64_t base = 0;
    bool padded = false;
    for (int d = 0; d < r - 1; ++d) {
      int64_t m = maps[d][idx[d]];
      if (m == kPad) padded = true;
      else base += m;
    }
    for (int64_t j = 0; j < inner; ++j) {
      std::byte* o = dst + (i + j) * es;
      if (padded || last[j] == kPad) std::memcpy(o, pad, es);
      else std::memcpy(o, src + (base + last[j]) * es, es);
    }
    for (int d = r - 2; d >= 0; --d) {
      if (++idx[d] < out[d]) break;
      idx[d] = 0;
    }
  }
  return y;
}

std::vector<int64_t> iota_map(int64_t n, int64_t stride) {
  std::vector<int64_t> m(n);
  for (int64_t i = 0; i < n; ++i) m[i] = i * stride;
  return m;
}

Outs op_Reshape(const OpContext& c) {
  const Tensor& x = c.in(0);
  std::vector<int64_t> shape = c.opset >= 5 ? c.in(1).to_i64() : c.node.attr_ints("shape");
  bool allowzero = c.node.attr_int("allowzero", 0) != 0;
  int64_t known = 1, infer = -1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == 0 && !allowzero) {
      check((int)i < x.rank(), c.where(), ": shape entry 0 at position ", i, " has no input dim to copy");
      shape[i] = x.shape()[i];
    }
    if (shape[i] == -1) {
      check(infer < 0, c.where(), ": more than one -1 in shape");
      infer = (int64_t)i;
    } else {
      check(shape[i] >= 0, c.where(), ": invalid shape entry ", shape[i]);
      // Overflow checked without building a message per entry (a shape tensor may have millions of entries).
      if (__builtin_mul_overflow(known, shape[i], &known))
        fail(c.where(), ": target shape ", shape_str(shape), " has more elements than int64 can count");
    }
  }
  if (infer >= 0) {
    check(known > 0 && x.numel() % known == 0, c.where(), ": cannot reshape ", shape_str(x.shape()), " to ", shape_str(shape));
    shape[infer] = x.numel() / known;
  }
  check(shape_numel(shape) == x.numel(), c.where(), ": cannot reshape ", shape_str(x.shape()), " (", x.numel(),
        " elements) to ", shape_str(shape));
  return {x.reshaped(shape)};
}

Outs op_Flatten(const OpContext& c) {
  const Tensor& x = c.in(0);
  int64_t axis = c.node.attr_int("axis", 1);
  if (axis < 0) axis += x.rank();
  check(axis >= 0 && axis <= x.rank(), c.where(), ": axis out of range");
  int64_t a = 1;
  for (int64_t d = 0; d < axis; ++d) a *= x.dim((int)d);
  return {x.reshaped({a, a ? x.numel() / a : 0})};
}

Outs op_Transpose(const OpContext& c) {
  const Tensor& x = c.in(0);
  int r = x.rank();
  std::vector<int64_t> dflt(r);
  for (int i = 0; i < r; ++i) dflt[i] = r - 1 - i;
  auto perm = c.node.attr_ints("perm", dflt);
  check((int)perm.size() == r, c.where(), ": perm has ", perm.size(), " entries for rank ", r);
  auto st = shape_strides(x.shape());
  Shape out(r);
  std::vector<std::vector<int64_t>> maps(r);
  std::vector<bool> seen(r, false);
  for (int d = 0; d < r; ++d) {
    int64_t p = norm_axis(perm[d], r, c);
    check(!seen[p], c.where(), ": perm repeats axis ", p);
    seen[p] = true;
    out[d] = x.shape()[p];
    if (x.numel() > 0) maps[d] = iota_map(out[d], st[p]);  // index tables only for data (an empty x may have huge dims)
  }
  return {remap(x, out, maps)};
}

Outs op_Squeeze(const OpContext& c) {
  const Tensor& x = c.in(0);
  auto axes = c.opset >= 13 ? (c.has(1) ? c.in(1).to_i64() : std::vector<int64_t>{}) : c.node.attr_ints("axes");
  std::vector<bool> drop(x.rank(), false);
  if (axes.empty())
    for (int d = 0; d < x.rank(); ++d) drop[d] = x.dim(d) == 1;
  for (auto a : axes) {
    int64_t d = norm_axis(a, x.rank(), c);
    check(x.dim((int)d) == 1, c.where(), ": cannot squeeze axis ", a, " of size ", x.dim((int)d));
    drop[d] = true;
  }
  Shape out;
  for (int d = 0; d < x.rank(); ++d)
    if (!drop[d]) out.push_back(x.dim(d));
  return {x.reshaped(out)};
}

Outs op_Unsqueeze(const OpContext& c) {
  const Tensor& x = c.in(0);
  auto axes = c.opset >= 13 ? c.in(1).to_i64() : c.node.attr_ints("axes");
  int64_t r = x.rank() + (int64_t)axes.size();
  std::vector<bool> ins(r, false);
  for (auto a : axes) {
    int64_t d = norm_axis(a, r, c);
    check(!ins[d], c.where(), ": repeated axis ", a);
    ins[d] = true;
  }
  Shape out;
  int k = 0;
  for (int64_t d = 0; d < r; ++d) out.push_back(ins[d] ? 1 : x.dim(k++));
  return {x.reshaped(out)};
}

Outs op_Concat(const OpContext& c) {
  std::vector<const Tensor*> ins;
  for (size_t i = 0; i < c.num_inputs(); ++i) ins.push_back(&c.in(i));
  return {concat(ins, c.node.attr_int("axis", 0), c)};
}

// Slices x along one axis: [start, start+len).
Tensor slice_axis(const Tensor& x, int64_t axis, int64_t start, int64_t len) {
  auto st = shape_strides(x.shape());
  Shape out = x.shape();
  out[axis] = len;
  if (shape_numel(out) == 0) return Tensor(x.dtype(), out);  // an empty result may still have huge dims
  std::vector<std::vector<int64_t>> maps(x.rank());
  for (int d = 0; d < x.rank(); ++d) maps[d] = iota_map(out[d], st[d]);
  for (auto& v : maps[axis]) v += start * st[axis];
  return remap(x, out, maps);
}

Outs op_Split(const OpContext& c) {
  const Tensor& x = c.in(0);
  int64_t axis = norm_axis(c.node.attr_int("axis", 0), x.rank(), c);
  size_t n = c.node.outputs.size();
  std::vector<int64_t> split = c.opset >= 13 ? (c.has(1) ? c.in(1).to_i64() : std::vector<int64_t>{}) : c.node.attr_ints("split");
  int64_t len = x.shape()[axis];
  if (split.empty()) {
    int64_t parts = (int64_t)n;
    if (c.node.has_attr("num_outputs")) parts = c.node.attr_int("num_outputs", parts);
    check(parts >= 1 && parts == (int64_t)n, c.where(), ": ", parts, " parts for ", n, " outputs");  // fuzz: parts 0
    int64_t each = (len + parts - 1) / parts;
    for (int64_t i = 0; i < parts; ++i) split.push_back(std::max<int64_t>(0, std::min(each, len - i * each)));
  }
  check(split.size() == n, c.where(), ": split has ", split.size(), " entries for ", n, " outputs");
  int64_t total = 0;
  for (auto s : split) {
    check(s >= 0, c.where(), ": split sizes ", shape_str(split), " include a negative size");
    total = checked_add(total, s, c.where(), ": split sizes");
  }
  check(total == len, c.where(), ": split sizes ", shape_str(split), " do not sum to ", len, ", the size of axis ", axis);
  Outs outs;
  int64_t start = 0;
  for (auto s : split) {
    outs.push_back(slice_axis(x, axis, start, s));
    start += s;
  }
  return outs;
}

Outs op_Slice(const OpContext& c) {
  const Tensor& x = c.in(0);
  int64_t r = x.rank();
  std::vector<int64_t> starts, ends, axes, steps;
  if (c.opset < 10) {
    starts = c.node.attr_ints("starts");
    ends = c.node.attr_ints("ends");
    axes = c.node.attr_ints("axes");
  } else {
    starts = c.in(1).to_i64();
    ends = c.in(2).to_i64();
    if (c.has(3)) axes = c.in(3).to_i64();
    if (c.has(4)) steps = c.in(4).to_i64();
  }
  if (axes.empty())
    for (size_t i = 0; i < starts.size(); ++i) axes.push_back((int64_t)i);
  if (steps.empty()) steps.assign(starts.size(), 1);
  check(starts.size() == ends.size() && axes.size() == starts.size() && steps.size() == starts.size(), c.where(),
        ": starts/ends/axes/steps lengths differ");
  auto st = shape_strides(x.shape());
  Shape out = x.shape();
  std::vector<std::vector<int64_t>> maps(r);
  bool tables = x.numel() > 0;  // index tables only for data: an empty x may have huge dims
  if (tables)
    for (int d = 0; d < r; ++d) maps[d] = iota_map(out[d], st[d]);
  for (size_t i = 0; i < axes.size(); ++i) {
    int64_t a = norm_axis(axes[i], r, c), dim = x.shape()[a], step = steps[i];
    check(step != 0, c.where(), ": step 0");
    // A step longer than the axis selects at most one element, as a step of exactly the axis length does; clamping
    // keeps the arithmetic below in range for any int64 step (INT64_MIN included).
    step = std::clamp<int64_t>(step, -std::max<int64_t>(dim, 1), std::max<int64_t>(dim, 1));
    int64_t s = starts[i], e = ends[i];
    if (s < 0) s += dim;
    if (e < 0) e += dim;
    if (step > 0) {
      s = std::clamp<int64_t>(s, 0, dim);
      e = std::clamp<int64_t>(e, 0, dim);
    } else {
      s = std::clamp<int64_t>(s, 0, dim - 1);
      e = std::clamp<int64_t>(e, -1, dim - 1);
    }
    int64_t n = step > 0 ? std::max<int64_t>(0, (e - s + step - 1) / step) : std::max<int64_t>(0, (s - e - step - 1) / (-step));
    out[a] = n;
    if (!tables) continue;
    maps[a].resize(n);
    for (int64_t k = 0; k < n; ++k) maps[a][k] = (s + k * step) * st[a];
  }
  return {remap(x, out, maps)};
}

Outs op_Gather(const OpContext& c) {
  const Tensor& x = c.in(0);
  int64_t r = x.rank();
  int64_t axis = norm_axis(c.node.attr_int("axis", 0), r, c);
  auto idx = c.in(1).to_i64();
  int64_t dim = x.shape()[axis];
  auto st = shape_strides(x.shape());
  Shape flat_out = x.shape();
  flat_out[axis] = (int64_t)idx.size();
  std::vector<std::vector<int64_t>> maps(r);
  bool tables = x.numel() > 0;  // index tables only for data: an empty x may have huge dims
  if (tables)
    for (int d = 0; d < r; ++d) maps[d] = iota_map(flat_out[d], st[d]);
  for (size_t k = 0; k < idx.size(); ++k) {
    int64_t i = idx[k] < 0 ? idx[k] + dim : idx[k];
    check(i >= 0 && i < dim, c.where(), ": index ", idx[k], " out of range for axis of size ", dim);
    if (tables) maps[axis][k] = i * st[axis];
  }
  Tensor y = remap(x, flat_out, maps);
  Shape out(x.shape().begin(), x.shape().begin() + axis);
  out.insert(out.end(), c.in(1).shape().begin(), c.in(1).shape().end());
  out.insert(out.end(), x.shape().begin() + axis + 1, x.shape().end());
  return {y.reshaped(out)};
}

Outs op_GatherElements(const OpContext& c) {
  const Tensor& x = c.in(0);
  const Tensor& ind = c.in(1);
  int64_t r = x.rank();
  int64_t axis = norm_axis(c.node.attr_int("axis", 0), r, c);
  check(ind.rank() == r, c.where(), ": indices rank differs from data rank");
  for (int64_t d = 0; d < r; ++d)
    check(d == axis || ind.shape()[d] <= x.shape()[d], c.where(), ": indices ", shape_str(ind.shape()),
          " exceed data ", shape_str(x.shape()), " on axis ", d);
  auto idx = ind.to_i64();
  auto st = shape_strides(x.shape());
  Tensor y(x.dtype(), ind.shape());
  size_t es = dtype_size(x.dtype());
  std::vector<int64_t> coord(r, 0);
  for (int64_t i = 0; i < ind.numel(); ++i) {
    int64_t off = 0;
    for (int64_t d = 0; d < r; ++d) {
      int64_t v = coord[d];
      if (d == axis) {
        v = idx[i] < 0 ? idx[i] + x.shape()[d] : idx[i];
        check(v >= 0 && v < x.shape()[d], c.where(), ": index ", idx[i], " out of range");
      }
      off += v * st[d];
    }
    std::memcpy(static_cast<std::byte*>(y.raw_mut()) + i * es, static_cast<const std::byte*>(x.raw()) + off * es, es);
    for (int64_t d = r - 1; d >= 0; --d) {
      if (++coord[d] < ind.shape()[d]) break;
      coord[d] = 0;
    }
  }
  return {y};
}

// Maps for broadcasting x to `out` (size-1 dims repeat).
std::vector<std::vector<int64_t>> broadcast_maps(const Tensor& x, const Shape& out) {
  int r = (int)out.size(), off = r - x.rank();
  auto st = shape_strides(x.shape());
  std::vector<std::vector<int64_t>> maps(r);
  for (int d = 0; d < r; ++d) {
    maps[d].assign(out[d], 0);
    if (d >= off && x.dim(d - off) != 1) maps[d] = iota_map(out[d], st[d - off]);
  }
  return maps;
}

Outs op_Expand(const OpContext& c) {
  const Tensor& x = c.in(0);
  Shape out = broadcast_shapes({x.shape(), c.in(1).to_i64()}, c.where());
  check_allocation(x.dtype(), out);  // before the index maps, which are as long as the output's dims
  if (shape_numel(out) == 0) return {Tensor(x.dtype(), out)};  // empty, however long its other dims
  return {remap(x, out, broadcast_maps(x, out))};
}

Outs op_Tile(const OpContext& c) {
  const Tensor& x = c.in(0);
  auto rep = c.in(1).to_i64();
  check((int)rep.size() == x.rank(), c.where(), ": repeats has ", rep.size(), " values for rank ", x.rank());
  auto st = shape_strides(x.shape());
  Shape out(x.rank());
  for (int d = 0; d < x.rank(); ++d) {
    check(rep[d] >= 0, c.where(), ": negative repeat");
    out[d] = checked_mul(x.dim(d), rep[d], c.where(), ": output size of axis ", d);
  }
  check_allocation(x.dtype(), out);  // before the index maps, which are as long as the output's dims
  if (shape_numel(out) == 0) return {Tensor(x.dtype(), out)};  // empty, however long its other dims
  std::vector<std::vector<int64_t>> maps(x.rank());
  for (int d = 0; d < x.rank(); ++d) {
    maps[d].resize(out[d]);
    for (int64_t k = 0; k < out[d]; ++k) maps[d][k] = (k % x.dim(d)) * st[d];
  }
  return {remap(x, out, maps)};
}

Outs op_Pad(const OpContext& c) {
  const Tensor& x = c.in(0);
  int r = x.rank();
  std::string mode = c.node.attr_string("mode", "constant");
  std::vector<int64_t> pads = c.opset >= 11 ? c.in(1).to_i64() : c.node.attr_ints("pads");
  std::vector<int64_t> axes;
  if (c.opset >= 18 && c.has(3)) axes = c.in(3).to_i64();
  if (axes.empty())
    for (int d = 0; d < r; ++d) axes.push_back(d);
  check(pads.size() == 2 * axes.size(), c.where(), ": pads has ", pads.size(), " values, expected ", 2 * axes.size());
  std::vector<int64_t> pb(r, 0), pe(r, 0);
  for (size_t i = 0; i < axes.size(); ++i) {
    int64_t a = norm_axis(axes[i], r, c);
    pb[a] = pads[i];
    pe[a] = pads[i + axes.size()];
  }
  Tensor padv(x.dtype(), {});
  if (c.opset >= 11 && c.has(2)) {
    padv = c.in(2).cast(x.dtype()).reshaped({});
  } else if (c.opset < 11) {
    padv = Tensor::scalar<float>(c.node.attr_float("value", 0.f)).cast(x.dtype());
  }
  auto st = shape_strides(x.shape());
  Shape out(r);
  for (int d = 0; d < r; ++d) {
    out[d] = checked_add(checked_add(x.dim(d), pb[d], c.where(), ": padded axis ", d), pe[d], c.where(), ": padded axis ", d);
    check(out[d] >= 0, c.where(), ": pads remove more than the whole axis ", d);
  }
  check_allocation(x.dtype(), out);  // before the index maps, which are as long as the output's dims
  if (shape_numel(out) == 0) return {Tensor(x.dtype(), out)};  // empty, however long its other dims
  std::vector<std::vector<int64_t>> maps(r);
  for (int d = 0; d < r; ++d) {
    int64_t n = x.dim(d);
    maps[d].resize(out[d]);
    for (int64_t k = 0; k < out[d]; ++k) {
      int64_t s = k - pb[d];
      if (s < 0 || s >= n) {
        if (mode == "constant") {
          maps[d][k] = kPad;
          continue;
        }
        check(n > 0, c.where(), ": cannot ", mode, "-pad an empty axis");
        if (mode == "edge") {
          s = std::clamp<int64_t>(s, 0, n - 1);
        } else if (mode == "reflect") {
          if (n == 1) s = 0;
          else {
            int64_t period = 2 * (n - 1);
            s = ((s % period) + period) % period;
            if (s >= n) s = period - s;
          }
        } else if (mode == "wrap") {
          s = ((s % n) + n) % n;
        } else {
          unsupported(c.where(), ": pad mode '", mode, "' is not supported");
        }
      }
      maps[d][k] = s * st[d];
    }
  }
  return {remap(x, out, maps, padv.raw())};
}

Outs op_Shape(const OpContext& c) {
  const Shape& s = c.in(0).shape();
  int64_t r = (int64_t)s.size();
  auto clampi = [r](int64_t v) { return std::clamp(v < 0 ? v + r : v, (int64_t)0, r); };
  int64_t b = clampi(c.node.attr_int("start", 0)), e = clampi(c.node.attr_int("end", r));
  Shape sub(s.begin() + b, s.begin() + std::max(b, e));
  return {Tensor::from_vector<int64_t>({(int64_t)sub.size()}, sub)};
}

Outs op_Size(const OpContext& c) { return {Tensor::scalar<int64_t>(c.in(0).numel())}; }

Outs op_ConstantOfShape(const OpContext& c) {
  Shape s = c.in(0).to_i64();
  const Attribute* a = c.node.attr("value");
  Tensor v = a ? a->t : Tensor::scalar<float>(0.f);
  check(v.numel() == 1, c.where(), ": value must hold one element");
  Tensor y(v.dtype(), s);
  size_t es = dtype_size(v.dtype());
  for (int64_t i = 0; i < y.numel(); ++i) std::memcpy(static_cast<std::byte*>(y.raw_mut()) + i * es, v.raw(), es);
  return {y};
}

Outs op_Range(const OpContext& c) {
  DType dt = c.in(0).dtype();
  double s = first_f64(c, 0), l = first_f64(c, 1), d = first_f64(c, 2);
  check(d != 0, c.where(), ": delta is 0");
  double count = std::ceil((l - s) / d);
  check(std::isfinite(count) && count < 9.0e18, c.where(), ": range [", s, ", ", l, ") with delta ", d, " has ", count,
        " elements, more than int64 can count");
  int64_t n = count > 0 ? (int64_t)count : 0;  // a negative count (even beyond int64) is an empty range
  check_allocation(DType::Float64, {n});
  std::vector<double> v(n);
  for (int64_t i = 0; i < n; ++i) v[i] = s + i * d;
  if (dtype_is_integer(dt)) {  // exact integer arithmetic
    int64_t si = c.in(0).to_i64()[0], di = c.in(2).to_i64()[0];
    std::vector<int64_t> iv(n);
    for (int64_t i = 0; i < n; ++i) iv[i] = si + i * di;
    return {Tensor::from_vector<int64_t>({n}, iv).cast(dt)};
  }
  return {Tensor::from_vector<double>({n}, v).cast(dt)};
}

Outs op_DepthSpace(const OpContext& c, bool to_space) {
  const Tensor& x = c.in(0);
  check(x.rank() == 4, c.where(), ": input must be 4-D");
  int64_t b = c.node.attr_int("blocksize", 1), N = x.dim(0), C = x.dim(1), H = x.dim(2), W = x.dim(3);
  std::string mode = c.node.attr_string("mode", "DCR");
  Tensor t;
  if (to_space) {
    check(C % (b * b) == 0, c.where(), ": channels not divisible by blocksize^2");
    int64_t Co = C / (b * b);
    std::vector<int64_t> perm;
    if (mode == "DCR") {
      t = x.reshaped({N, b, b, Co, H, W});
      perm = {0, 3, 4, 1, 5, 2};
    } else {
      t = x.reshaped({N, Co, b, b, H, W});
      perm = {0, 1, 4, 2, 5, 3};
    }
    Node tn;
    tn.op_type = "Transpose";
    Attribute a;
    a.name = "perm";
    a.type = AttrType::Ints;
    a.ints = perm;
    tn.attrs.push_back(a);
    std::vector<const Tensor*> ins = {&t};
    Tensor y = op_Transpose(OpContext{tn, 13, ins})[0];
    return {y.reshaped({N, Co, H * b, W * b})};
  }
  check(H % b == 0 && W % b == 0, c.where(), ": spatial dims not divisible by blocksize");
  t = x.reshaped({N, C, H / b, b, W / b, b});
  Node tn;
  tn.op_type = "Transpose";
  Attribute a;
  a.name = "perm";
  a.type = AttrType::Ints;
  a.ints = {0, 3, 5, 1, 2, 4};
  tn.attrs.push_back(a);
  std::vector<const Tensor*> ins = {&t};
  Tensor y = op_Transpose(OpContext{tn, 13, ins})[0];
  return {y.reshaped({N, C * b * b, H / b, W / b})};
}
Outs op_DepthToSpace(const OpContext& c) { return op_DepthSpace(c, true); }
Outs op_SpaceToDepth(const OpContext& c) { return op_DepthSpace(c, false); }

}  // namespace

void register_shape_ops(OpRegistry& r) {
  struct E { const char* name; ComputeFn fn; int since; };
  const E table[] = {
      {"Reshape", op_Reshape, 5}, {"Flatten", op_Flatten, 1}, {"Transpose", op_Transpose, 1},
      {"Squeeze", op_Squeeze, 1}, {"Unsqueeze", op_Unsqueeze, 1}, {"Concat", op_Concat, 4}, {"Split", op_Split, 2},
      {"Slice", op_Slice, 1}, {"Gather", op_Gather, 1}, {"GatherElements", op_GatherElements, 11},
      {"Expand", op_Expand, 8}, {"Tile", op_Tile, 6}, {"Pad", op_Pad, 2}, {"Shape", op_Shape, 1}, {"Size", op_Size, 1},
      {"ConstantOfShape", op_ConstantOfShape, 9}, {"Range", op_Range, 11}, {"DepthToSpace", op_DepthToSpace, 1},
      {"SpaceToDepth", op_SpaceToDepth, 1},
  };
  for (auto& e : table) r.add({e.name, "", e.since, e.fn});
}

}  // namespace lowbit
