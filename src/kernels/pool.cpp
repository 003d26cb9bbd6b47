// Pooling kernels: generic N-d loops (the reference) and a 2-D path that gives the same bits.
#include "kernels/pool.h"

#include "kernels/dispatch.h"
#include "kernels/window.h"

#include <algorithm>
#include <limits>
#include <vector>

namespace lowbit {

namespace {
// 2-D windows without the generic odometers: the taps of a window that fall inside the image, per axis. Visiting
// them kh-major, kw-minor is the order of for_each_tap, so results are bit-identical to the generic loops.
struct Taps1d {
  int64_t first = 0, count = 0, padded = 0;  // first inside tap, inside taps, taps inside the explicit padding
};
std::vector<Taps1d> taps_1d(int64_t out, int64_t in, int64_t k, int64_t s, int64_t d, int64_t pb, int64_t pe) {
  std::vector<Taps1d> t((size_t)out);
  for (int64_t o = 0; o < out; ++o) {
    int64_t start = o * s - pb;
    Taps1d& a = t[(size_t)o];
    a.first = -1;
    for (int64_t j = 0; j < k; ++j) {
      int64_t c = start + j * d;
      if (c >= 0 && c < in) {
        if (a.first < 0) a.first = j;
        ++a.count;
      }
      if (c >= -pb && c < in + pe) ++a.padded;
    }
    if (a.first < 0) a.first = 0;
  }
  return t;
}

// One output of a 2-D window, taps in for_each_tap's order.
template <bool IsMax>
float pool_one(const float* src, int64_t IW, int64_t ih0, int64_t iw0, int64_t dh, int64_t dw, const Taps1d& h,
               const Taps1d& w, bool count_include_pad) {
  if constexpr (IsMax) {
    float best = -std::numeric_limits<float>::infinity();
    bool any = false;
    for (int64_t a = 0; a < h.count; ++a) {
      const float* row = src + (ih0 + a * dh) * IW + iw0;
      for (int64_t b = 0; b < w.count; ++b) {
        float v = row[b * dw];
        if (!any || v > best) best = v;
        any = true;
      }
    }
    return best;
  } else {
    float sum = 0.f;
    for (int64_t a = 0; a < h.count; ++a) {
      const float* row = src + (ih0 + a * dh) * IW + iw0;
      for (int64_t b = 0; b < w.count; ++b) sum += row[b * dw];
    }
    int64_t count = count_include_pad ? h.padded * w.padded : h.count * w.count;
    return count ? sum / (float)count : 0.f;
  }
}

// Max pooling over a copy of each channel bordered with -inf, so every window is whole and the loop over columns
// has no bounds checks. Same bits as the reference: a window's maximum is its first inside value replaced by every
// later larger one, and -inf borders never win against an inside value, unless the channel holds a NaN (a NaN
// first value stays; -inf before it would not) -- such channels take the per-window path.
bool max_pool2d_padded(const ConvGeom& g, const float* src, float* dst, std::vector<float>& buf) {
  int64_t IH = g.in[0], IW = g.in[1], OH = g.out[0], OW = g.out[1], KH = g.kernel[0], KW = g.kernel[1];
  int64_t sh = g.stride[0], sw = g.stride[1], dh = g.dilation[0], dw = g.dilation[1];
  int64_t pt = g.pad_begin[0], pl = g.pad_begin[1];
  int64_t PH = std::max(IH + pt, (OH - 1) * sh + (KH - 1) * dh + 1);
  int64_t PW = std::max(IW + pl, (OW - 1) * sw + (KW - 1) * dw + 1);
  buf.assign((size_t)(PH * PW), -std::numeric_limits<float>::infinity());
  bool nan = false;
  for (int64_t i = 0; i < IH; ++i) {
    const float* s = src + i * IW;
    float* d = buf.data() + (i + pt) * PW + pl;
    for (int64_t j = 0; j < IW; ++j) {
      d[j] = s[j];
      nan |= s[j] != s[j];
    }
  }
  if (nan) return false;
  for (int64_t oh = 0; oh < OH; ++oh) {
    float* d = dst + oh * OW;
    for (int64_t a = 0; a < KH; ++a) {
      const float* row = buf.data() + (oh * sh + a * dh) * PW;
      for (int64_t b = 0; b < KW; ++b) {
        const float* s = row + b * dw;
        if (a == 0 && b == 0) {
          for (int64_t j = 0; j < OW; ++j) d[j] = s[j * sw];
        } else {
          for (int64_t j = 0; j < OW; ++j) {
            float v = s[j * sw];
            d[j] = v > d[j] ? v : d[j];
          }
        }
      }
    }
  }
  return true;
}

template <bool IsMax>
void pool2d(const ConvGeom& g, const float* x, float* y, bool count_include_pad) {
  int64_t IH = g.in[0], IW = g.in[1], OH = g.out[0], OW = g.out[1], KW = g.kernel[1];
  int64_t sh = g.stride[0], sw = g.stride[1], dh = g.dilation[0], dw = g.dilation[1];
  auto th = taps_1d(OH, IH, g.kernel[0], sh, dh, g.pad_begin[0], g.pad_end[0]);
  auto tw = taps_1d(OW, IW, KW, sw, dw, g.pad_begin[1], g.pad_end[1]);
  // Columns whose window lies wholly inside the row: [lo, hi), run tap by tap across all of them at once.
  int64_t lo = 0, hi = 0;
  while (lo < OW && tw[(size_t)lo].count != KW) ++lo;
  hi = lo;
  while (hi < OW && tw[(size_t)hi].count == KW) ++hi;
#pragma omp parallel for schedule(static)
  for (int64_t nc = 0; nc < g.batch * g.in_ch; ++nc) {
    const float* src = x + nc * IH * IW;
    float* dst = y + nc * OH * OW;
    if constexpr (IsMax) {
      thread_local std::vector<float> buf;
      if (max_pool2d_padded(g, src, dst, buf)) continue;
    }
    for (int64_t oh = 0; oh < OH; ++oh) {
      const Taps1d& h = th[(size_t)oh];
      int64_t ih0 = oh * sh - g.pad_begin[0] + h.first * dh;
      float* drow = dst + oh * OW;
      auto one = [&](int64_t ow) {
        const Taps1d& w = tw[(size_t)ow];
        drow[ow] = pool_one<IsMax>(src, IW, ih0, ow * sw - g.pad_begin[1] + w.first * dw, dh, dw, h, w,
                                   count_include_pad);
      };
      for (int64_t ow = 0; ow < lo; ++ow) one(ow);
      for (int64_t ow = hi; ow < OW; ++ow) one(ow);
      if (hi == lo) continue;
      if (h.count == 0) {
        for (int64_t ow = lo; ow < hi; ++ow) one(ow);
        continue;
      }
      float* d = drow + lo;
      int64_t n = hi - lo;
      const int64_t col0 = lo * sw - g.pad_begin[1];
      bool first = true;
      if constexpr (!IsMax) std::fill(d, d + n, 0.f);
      for (int64_t a = 0; a < h.count; ++a) {
        const float* row = src + (ih0 + a * dh) * IW + col0;
        for (int64_t b = 0; b < KW; ++b) {
          const float* s = row + b * dw;
          if constexpr (IsMax) {
            if (first) {
              for (int64_t j = 0; j < n; ++j) d[j] = s[j * sw];
            } else {
              for (int64_t j = 0; j < n; ++j) {
                float v = s[j * sw];
                d[j] = v > d[j] ? v : d[j];
              }
            }
            first = false;
          } else {
            for (int64_t j = 0; j < n; ++j) d[j] += s[j * sw];
          }
        }
      }
      if constexpr (!IsMax) {
        int64_t count = count_include_pad ? h.padded * tw[(size_t)lo].padded : h.count * KW;
        float fc = (float)count;
        for (int64_t j = 0; j < n; ++j) d[j] = d[j] / fc;
      }
    }
  }
}
}  // namespace

void max_pool_f32(const ConvGeom& g, const float* x, float* y, int64_t* indices, int storage_order) {
  int64_t S = g.in_size(), P = g.out_size();
  size_t r = g.in.size();
  if (r == 2 && !indices && fast_kernels_enabled()) return pool2d<true>(g, x, y, false);
#pragma omp parallel for schedule(static)
  for (int64_t nc = 0; nc < g.batch * g.in_ch; ++nc) {
    std::vector<int64_t> coord(r);
    const float* src = x + nc * S;
    window::for_each_window(g, [&](int64_t p, const std::vector<int64_t>& start) {
      float best = -std::numeric_limits<float>::infinity();
      int64_t best_idx = -1;
      std::vector<int64_t> best_coord(r, 0);
      window::for_each_tap(g, start, coord, [&](bool inside, int64_t idx) {
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
  if (r == 2 && fast_kernels_enabled()) return pool2d<false>(g, x, y, count_include_pad);
#pragma omp parallel for schedule(static)
  for (int64_t nc = 0; nc < g.batch * g.in_ch; ++nc) {
    std::vector<int64_t> coord(r);
    const float* src = x + nc * S;
    window::for_each_window(g, [&](int64_t p, const std::vector<int64_t>& start) {
      float sum = 0.f;
      int64_t count = window::for_each_avg_tap(g, start, coord, count_include_pad, [&](int64_t idx) { sum += src[idx]; });
      y[nc * P + p] = count ? sum / (float)count : 0.f;
    });
  }
}

}  // namespace lowbit
