// Pooling kernels.
#include "kernels/pool.h"

#include <limits>
#include <vector>

namespace lowbit {

namespace {
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
}  // namespace

void max_pool_f32(const ConvGeom& g, const float* x, float* y, int64_t* indices, int storage_order) {
  int64_t S = g.in_size(), P = g.out_size();
  size_t r = g.in.size();
#pragma omp parallel for schedule(static)
  for (int64_t nc = 0; nc < g.batch * g.in_ch; ++nc) {
    std::vector<int64_t> coord(r);
    const float* src = x + nc * S;
    for_each_window(g, [&](int64_t p, const std::vector<int64_t>& start) {
      float best = -std::numeric_limits<float>::infinity();
      int64_t best_idx = -1;
      std::vector<int64_t> best_coord(r, 0);
      for_each_tap(g, start, coord, [&](bool inside, int64_t idx) {
        if (inside && (best_idx < 0 || src[idx] > best)) {
          best = src[idx];
          best_idx = idx;
          best_coord = coord;
        }
      });
      y[nc * P + p] = best;
      if (indices) {
        int64_t flat = best_idx;
        if (storage_order == 1) {  // column-major over the spatial dims
          flat = 0;
          for (int64_t d = (int64_t)r - 1; d >= 0; --d) flat = flat * g.in[d] + best_coord[d];
        }
        indices[nc * P + p] = nc * S + flat;
      }
    });
  }
}

void avg_pool_f32(const ConvGeom& g, const float* x, float* y, bool count_include_pad) {
  int64_t S = g.in_size(), P = g.out_size();
  size_t r = g.in.size();
#pragma omp parallel for schedule(static)
  for (int64_t nc = 0; nc < g.batch * g.in_ch; ++nc) {
    std::vector<int64_t> coord(r);
    const float* src = x + nc * S;
    for_each_window(g, [&](int64_t p, const std::vector<int64_t>& start) {
      float sum = 0.f;
      int64_t count = 0;
      for_each_tap(g, start, coord, [&](bool inside, int64_t idx) {
        if (inside) {
          sum += src[idx];
          ++count;
        } else if (count_include_pad) {
          // Taps in the explicit padding count; taps beyond it (ceil-mode overhang) do not.
          bool in_padded = true;
          for (size_t d = 0; d < r; ++d)
            if (coord[d] < -g.pad_begin[d] || coord[d] >= g.in[d] + g.pad_end[d]) in_padded = false;
          if (in_padded) ++count;
        }
      });
      y[nc * P + p] = count ? sum / (float)count : 0.f;
    });
  }
}

}  // namespace lowbit
