// NumPy-style multidirectional broadcasting: output shape and per-input offsets for each output element.
#pragma once
#include <vector>

#include "core/tensor.h"

namespace lowbit {

Shape broadcast_shapes(const std::vector<Shape>& shapes, const std::string& where);

// Walks the output in row-major order calling f(out_index, offsets) where offsets[k] is the linear index
// into input k. The innermost dimension is run as a tight loop with per-input strides.
template <size_t K, typename F>
void broadcast_for_each(const Shape& out, const std::array<Shape, K>& ins, F&& f) {
  int r = (int)out.size();
  std::array<std::vector<int64_t>, K> st;
  for (size_t k = 0; k < K; ++k) {
    st[k].assign(r, 0);
    const Shape& s = ins[k];
    int off = r - (int)s.size();
    // Each input must broadcast to `out` (rank not larger, each dim equal or 1): otherwise the strides below
    // would walk past the input's buffer.
    bool fits = off >= 0;
    for (int d = 0; fits && d < (int)s.size(); ++d) fits = s[d] == 1 || s[d] == out[d + off];
    if (!fits) fail("shape ", shape_str(s), " does not broadcast to ", shape_str(out));
    int64_t acc = 1;
    for (int d = (int)s.size() - 1; d >= 0; --d) {
      st[k][d + off] = s[d] == 1 ? 0 : acc;
      acc *= s[d];
    }
  }
  int64_t total = shape_numel(out);
  if (total == 0) return;
  if (r == 0) {
    std::array<int64_t, K> o{};
    f(0, o);
    return;
  }
  int64_t inner = out[r - 1];
  std::vector<int64_t> idx(r, 0);
  std::array<int64_t, K> base{};
  for (int64_t i = 0; i < total; i += inner) {
    std::array<int64_t, K> o = base;
    for (int64_t j = 0; j < inner; ++j) {
      f(i + j, o);
      for (size_t k = 0; k < K; ++k) o[k] += st[k][r - 1];
    }
    // Advance the odometer over the outer dimensions.
    for (int d = r - 2; d >= 0; --d) {
      ++idx[d];
      for (size_t k = 0; k < K; ++k) base[k] += st[k][d];
      if (idx[d] < out[d]) break;
      for (size_t k = 0; k < K; ++k) base[k] -= st[k][d] * out[d];
      idx[d] = 0;
    }
  }
}

}  // namespace lowbit
