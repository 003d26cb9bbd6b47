// Gradient rule of lowbit.FakeQuant (runtime/ops_quant.cpp), TECHNIQUES.md §9. With v = x / s, z = round(zp) and
// q = round(v) + z before clamping:
//   inside the grid (qmin <= q <= qmax): dy/dx = 1 (straight-through), dy/ds = round(v) - v, dy/dzp = 0;
//   below (q < qmin): dy/dx = 0, dy/ds = qmin - z, dy/dzp = -s;  above (q > qmax): the same with qmax.
// The scale's gradient is multiplied by the node's grad_scale attribute (LSQ: 1 / sqrt(N * qmax)); the zero point
// is rounded with a straight-through estimator, so it learns as a real number (LSQ+). With the attribute
// inside_grad = 0 (PACT), elements inside the grid contribute nothing to the scale's gradient: only clipping moves
// the clipping level s * qmax, as PACT's dy/dalpha = 1 above alpha, 0 below.
#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/fake_quant.h"
#include "train/grad.h"

namespace lowbit::train {

namespace {

// One run of n <= kRun elements, in float (vectorised): the input gradient gx, the scale-gradient term ts = g * ds and
// the zero-point term tz = g * s where the element is clipped (dz = -sum tz). kPerElement: s and z hold one value per
// element (a channel axis that is the last one), else one value for the run.
constexpr int kRun = 64;
template <bool kPerElement>
void grad_run(const float* __restrict x, const float* __restrict g, int64_t n, const float* __restrict s,
              const float* __restrict z, float qmin, float qmax, float inside_w, float* __restrict gx,
              float* __restrict ts, float* __restrict tz) {
  for (int64_t j = 0; j < n; ++j) {
    const float sj = s[kPerElement ? j : 0], zj = z[kPerElement ? j : 0];
    const float v = scaled_clamped(x[j], sj), rv = round_half_even_small(v), q = rv + zj;
    const float d_in = (rv - v) * inside_w, d_lo = qmin - zj, d_hi = qmax - zj, gj = g[j], gs = gj * sj;
    // Every value computed first, then nested selects on single comparisons (no short-circuit operators, nothing
    // computed under a condition), so that the loop vectorises. A NaN fails every comparison: no gradient at all.
    gx[j] = q >= qmin ? (q <= qmax ? gj : 0.f) : 0.f;
    ts[j] = gj * (q >= qmin ? (q <= qmax ? d_in : d_hi) : (q < qmin ? d_lo : 0.f));
    tz[j] = q < qmin ? gs : (q > qmax ? gs : 0.f);
  }
}

std::vector<Tensor> g_FakeQuant(const GradContext& c) {
  const Tensor& x = c.in(0);
  Tensor scale = c.in(1), zp = c.in(2);
  float qmin = (float)c.node.attr_int("qmin", 0), qmax = (float)c.node.attr_int("qmax", 255);
  float gscale = c.node.attr_float("grad_scale", 1.f);
  bool inside_grad = c.node.attr_int("inside_grad", 1) != 0;
  int64_t S = scale.numel(), inner = x.numel(), outer = 1;
  if (S > 1) {
    int64_t axis = c.node.attr_int("axis", 1);
    if (axis < 0) axis += x.rank();
    check(axis >= 0 && axis < x.rank() && x.dim((int)axis) == S, c.where(), ": ", S, " scales do not match axis ", axis);
    inner = 1;
    for (int d = (int)axis + 1; d < x.rank(); ++d) inner *= x.dim(d);
    outer = x.numel() / std::max<int64_t>(1, S * inner);
  }
  Tensor g = c.gout(0);
  const float* px = x.data<float>();
  const float* pg = g.data<float>();
  const float* ps = scale.data<float>();
  std::vector<float> z((size_t)S);
  for (int64_t k = 0; k < S; ++k) z[(size_t)k] = std::min(std::max(std::nearbyint(zp.data<float>()[k]), qmin), qmax);
  Tensor gx = c.wants(0) ? Tensor::uninitialized(DType::Float32, x.shape()) : Tensor();
  float* pgx = gx.defined() ? gx.data<float>() : nullptr;
  // Work items of about kFakeQuantBlock elements; partial sums per item and channel, each run of kRun elements added
  // into them in order, the items added in item order: the result depends neither on the thread count nor on the
  // vector width. Items are blocks of one channel's run of `inner` values, or, when the channel axis is the last
  // one (inner == 1: MatMul weights), blocks of whole rows of S channels.
  const bool last_axis = inner == 1 && S > 1;
  const int64_t rows = outer * S, per_row = last_axis ? 1 : (inner + kFakeQuantBlock - 1) / kFakeQuantBlock;
  const int64_t rows_per_item = last_axis ? std::max<int64_t>(1, kFakeQuantBlock / S) : 1;
  const int64_t items = last_axis ? (outer + rows_per_item - 1) / rows_per_item : rows * per_row;
  const int64_t width = last_axis ? S : 1;  // partial sums per item
  std::vector<double> part_s((size_t)(items * width), 0.0), part_z((size_t)(items * width), 0.0);
  const float in_w = inside_grad ? 1.f : 0.f;
  const float* pz = z.data();
#pragma omp parallel for schedule(static) if (x.numel() > 65536)
  for (int64_t b = 0; b < items; ++b) {
    float ts_run[kRun], tz_run[kRun], gx_run[kRun];
    double* acc_s = part_s.data() + b * width;
    double* acc_z = part_z.data() + b * width;
    if (last_axis) {
      for (int64_t o = b * rows_per_item; o < std::min(outer, (b + 1) * rows_per_item); ++o)
        for (int64_t k0 = 0; k0 < S; k0 += kRun) {
          const int64_t n = std::min<int64_t>(kRun, S - k0), i = o * S + k0;
          grad_run<true>(px + i, pg + i, n, ps + k0, pz + k0, qmin, qmax, in_w, gx_run, ts_run, tz_run);
          if (pgx) std::copy(gx_run, gx_run + n, pgx + i);
          for (int64_t j = 0; j < n; ++j) acc_s[k0 + j] += ts_run[j], acc_z[k0 + j] -= tz_run[j];
        }
    } else {
      const int64_t r = b / per_row, k = r % S;
      const int64_t i0 = r * inner + (b % per_row) * kFakeQuantBlock, i1 = std::min(r * inner + inner, i0 + kFakeQuantBlock);
      constexpr int kLanes = 8;  // fixed lanes for the run sums
      double lane_s[kLanes] = {}, lane_z[kLanes] = {};
      for (int64_t i = i0; i < i1; i += kRun) {
        const int64_t n = std::min<int64_t>(kRun, i1 - i);
        grad_run<false>(px + i, pg + i, n, ps + k, pz + k, qmin, qmax, in_w, gx_run, ts_run, tz_run);
        if (pgx) std::copy(gx_run, gx_run + n, pgx + i);
        for (int64_t j0 = 0; j0 < n; j0 += kLanes)  // element j into lane j % kLanes
          for (int64_t l = 0; l < std::min<int64_t>(kLanes, n - j0); ++l)
            lane_s[l] += ts_run[j0 + l], lane_z[l] -= tz_run[j0 + l];
      }
      for (int j = 0; j < kLanes; ++j) acc_s[0] += lane_s[j], acc_z[0] += lane_z[j];
    }
  }
  std::vector<double> gs((size_t)S, 0.0), gz((size_t)S, 0.0);
  for (int64_t b = 0; b < items; ++b)
    for (int64_t j = 0; j < width; ++j) {
      const size_t k = (size_t)(last_axis ? j : (b / per_row) % S);
      gs[k] += part_s[(size_t)(b * width + j)], gz[k] += part_z[(size_t)(b * width + j)];
    }
  std::vector<Tensor> r(c.ins.size());
  r[0] = gx;
  if (c.wants(1)) {
    Tensor t = Tensor::uninitialized(DType::Float32, scale.shape());
    for (int64_t k = 0; k < S; ++k) t.data<float>()[k] = (float)(gs[(size_t)k] * gscale);
    r[1] = t;
  }
  if (c.wants(2)) {
    Tensor t = Tensor::uninitialized(DType::Float32, zp.shape());
    for (int64_t k = 0; k < S; ++k) t.data<float>()[k] = (float)(gz[(size_t)k] * gscale);
    r[2] = t;
  }
  return r;
}

}  // namespace

void add_quant_rules(GradTable& t) { t.add("lowbit::FakeQuant", g_FakeQuant); }

}  // namespace lowbit::train
