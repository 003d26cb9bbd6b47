// NumPy-style multidirectional broadcasting: output shape and per-input offsets for each output element.
#pragma once
#include <vector>

#include "core/tensor.h"

namespace lowbit {

Shape broadcast_shapes(const std::vector<Shape>& shapes, const std::string& where);

// Strides (in elements) of an input of shape `s` read as the broadcast shape `out`: 0 along broadcast dims. An
// Error unless s broadcasts to out (rank not larger, each dim equal or 1): otherwise strides would walk past the
// input's buffer.
inline std::vector<int64_t> broadcast_strides(const Shape& out, const Shape& s) {
  int r = (int)out.size(), off = r - (int)s.size();
  bool fits = off >= 0;
  for (int d = 0; fits && d < (int)s.size(); ++d) fits = s[d] == 1 || s[d] == out[d + off];
  if (!fits) fail("shape ", shape_str(s), " does not broadcast to ", shape_str(out));
  std::vector<int64_t> st(r, 0);
  int64_t acc = 1;
  for (int d = (int)s.size() - 1; d >= 0; --d) {
    st[d + off] = s[d] == 1 ? 0 : acc;
    acc *= s[d];
  }
  return st;
}

// Walks the output in row-major order calling f(out_index, offsets) where offsets[k] is the linear index
// into input k. The innermost dimension is run as a tight loop with per-input strides.
template <size_t K, typename F>
void broadcast_for_each(const Shape& out, const std::array<Shape, K>& ins, F&& f) {
  int r = (int)out.size();
  std::array<std::vector<int64_t>, K> st;
  for (size_t k = 0; k < K; ++k) st[k] = broadcast_strides(out, ins[k]);
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

// The same walk for two inputs, in runs: dimensions that continue each other in both inputs (both contiguous, or
// both broadcast) are merged, and run(out_off, a_off, b_off, len, a_step, b_step) is called once per innermost run,
// where a_step/b_step are 1 or 0 (input broadcast along the run) or another stride. A per-channel bias on
// [N, C, H, W] becomes N * C runs of H * W; a scalar operand one run over everything. Runs are handed out to threads
// when there are many elements, so `run` must only write its own output range.
template <typename Run>
void broadcast_runs(const Shape& out, const Shape& sa, const Shape& sb, Run&& run) {
  int r = (int)out.size();
  const std::vector<int64_t> st[2] = {broadcast_strides(out, sa), broadcast_strides(out, sb)};
  int64_t total = shape_numel(out);
  if (total == 0) return;
  // Merge dims (innermost first) and drop size-1 dims.
  std::vector<int64_t> dims, sta, stb;
  for (int d = r - 1; d >= 0; --d) {
    if (out[d] == 1) continue;
    if (!dims.empty() && st[0][d] == sta.back() * dims.back() && st[1][d] == stb.back() * dims.back()) {
      dims.back() *= out[d];
      continue;
    }
    dims.push_back(out[d]);
    sta.push_back(st[0][d]);
    stb.push_back(st[1][d]);
  }
  if (dims.empty()) {  // every dim is 1
    run(0, 0, 0, 1, 1, 1);
    return;
  }
  int64_t len = dims[0], runs = total / len;
  int nd = (int)dims.size();
#pragma omp parallel for schedule(static) if (total > 65536 && runs > 1)
  for (int64_t q = 0; q < runs; ++q) {
    int64_t rem = q, oa = 0, ob = 0;
    for (int d = 1; d < nd; ++d) {
      int64_t i = rem % dims[d];
      rem /= dims[d];
      oa += i * sta[d];
      ob += i * stb[d];
    }
    run(q * len, oa, ob, len, sta[0], stb[0]);
  }
}

}  // namespace lowbit
