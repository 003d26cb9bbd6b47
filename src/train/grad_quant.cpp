// Gradient rule of lowbit.FakeQuant (runtime/ops_quant.cpp), TECHNIQUES.md §9. With v = x / s, z = round(zp) and
// q = round(v) + z before clamping:
//   inside the grid (qmin <= q <= qmax): dy/dx = 1 (straight-through), dy/ds = round(v) - v, dy/dzp = 0;
//   below (q < qmin): dy/dx = 0, dy/ds = qmin - z, dy/dzp = -s;  above (q > qmax): the same with qmax.
// The scale's gradient is multiplied by the node's grad_scale attribute (LSQ: 1 / sqrt(N * qmax)); the zero point
// is rounded with a straight-through estimator, so it learns as a real number (LSQ+). With the attribute
// inside_grad = 0 (PACT), elements inside the grid contribute nothing to the scale's gradient: only clipping moves
// the clipping level s * qmax, as PACT's dy/dalpha = 1 above alpha, 0 below.
#include <omp.h>

#include <cmath>
#include <vector>

#include "kernels/fake_quant.h"
#include "train/grad.h"

namespace lowbit::train {

namespace {

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
  // Per-thread partial sums of the scale and zero-point gradients, added in thread order (deterministic).
  int threads = omp_get_max_threads();
  std::vector<double> part_s((size_t)(threads * S), 0.0), part_z((size_t)(threads * S), 0.0);
  int64_t rows = outer * S;
#pragma omp parallel for schedule(static) if (rows * inner > 65536)
  for (int64_t r = 0; r < rows; ++r) {
    int64_t k = r % S;
    int t = omp_get_thread_num();
    float sk = ps[k], zk = z[(size_t)k];
    double acc_s = 0, acc_z = 0;
    for (int64_t i = r * inner; i < (r + 1) * inner; ++i) {
      float v = scaled_clamped(px[i], sk);
      if (v != v) {
        if (pgx) pgx[i] = 0.f;
        continue;
      }
      float rv = round_half_even_small(v), q = rv + zk;
      if (q < qmin || q > qmax) {
        if (pgx) pgx[i] = 0.f;
        acc_s += (double)pg[i] * ((q < qmin ? qmin : qmax) - zk);
        acc_z -= (double)pg[i] * sk;
      } else {
        if (pgx) pgx[i] = pg[i];
        if (inside_grad) acc_s += (double)pg[i] * (rv - v);
      }
    }
    part_s[(size_t)(t * S + k)] += acc_s;
    part_z[(size_t)(t * S + k)] += acc_z;
  }
  std::vector<double> gs((size_t)S, 0.0), gz((size_t)S, 0.0);
  for (int t = 0; t < threads; ++t)
    for (int64_t k = 0; k < S; ++k) gs[(size_t)k] += part_s[(size_t)(t * S + k)], gz[(size_t)k] += part_z[(size_t)(t * S + k)];
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
