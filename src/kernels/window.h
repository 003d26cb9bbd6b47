// The window odometers of the pooling kernels (float and integer): which input taps each output position reads.
#pragma once
#include <cstdint>
#include <vector>

#include "kernels/conv.h"

namespace lowbit::window {

// Calls f(output_pos, window start coords) for each output position of one channel.
template <typename F>
void for_each_window(const ConvGeom& g, F&& f) {
  size_t r = g.in.size();
  std::vector<int64_t> oc(r, 0), start(r);
  int64_t P = g.out_size();
  for (int64_t p = 0; p < P; ++p) {
    for (size_t d = 0; d < r; ++d) start[d] = oc[d] * g.stride[d] - g.pad_begin[d];
    f(p, start);
    for (int64_t d = (int64_t)r - 1; d >= 0; --d) {
      if (++oc[d] < g.out[d]) break;
      oc[d] = 0;
    }
  }
}

// Visits every kernel tap of the window at `start`: f(inside, flat input index, coords).
template <typename F>
void for_each_tap(const ConvGeom& g, const std::vector<int64_t>& start, std::vector<int64_t>& coord, F&& f) {
  size_t r = g.in.size();
  int64_t K = g.kernel_size();
  std::vector<int64_t> kc(r, 0);
  for (int64_t k = 0; k < K; ++k) {
    bool inside = true;
    int64_t idx = 0;
    for (size_t d = 0; d < r; ++d) {
      coord[d] = start[d] + kc[d] * g.dilation[d];
      if (coord[d] < 0 || coord[d] >= g.in[d]) inside = false;
      idx = idx * g.in[d] + coord[d];
    }
    f(inside, idx);
    for (int64_t d = (int64_t)r - 1; d >= 0; --d) {
      if (++kc[d] < g.kernel[d]) break;
      kc[d] = 0;
    }
  }
}

// Visits the taps of an average-pooling window that lie inside the input, f(flat index), in for_each_tap's order,
// and returns the divisor: those taps, plus, with count_include_pad, the taps in the explicit padding (not those
// beyond it, a ceil-mode overhang).
template <typename F>
int64_t for_each_avg_tap(const ConvGeom& g, const std::vector<int64_t>& start, std::vector<int64_t>& coord,
                         bool count_include_pad, F&& f) {
  int64_t count = 0;
  size_t r = g.in.size();
  for_each_tap(g, start, coord, [&](bool inside, int64_t idx) {
    if (inside) {
      f(idx);
      ++count;
    } else if (count_include_pad) {
      bool in_padded = true;
      for (size_t d = 0; d < r; ++d)
        if (coord[d] < -g.pad_begin[d] || coord[d] >= g.in[d] + g.pad_end[d]) in_padded = false;
      if (in_padded) ++count;
    }
  });
  return count;
}

}  // namespace lowbit::window
