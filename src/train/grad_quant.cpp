// Gradient rule of lowbit.FakeQuant (runtime/ops_quant.cpp), TECHNIQUES.md §9. With v = x / s, z = round(zp) and
// q = round(v) + z before clamping:
//   inside the grid (qmin <= q <= qmax): dy/dx = 1 (straight-through), dy/ds = round(v) - v, dy/dzp = 0;
//   below (q < qmin): dy/dx = 0, dy/ds = qmin - z, dy/dzp = -s;  above (q > qmax): the same with qmax.
// The scale's gradient is multiplied by the node's grad_scale attribute (LSQ: 1 / sqrt(N * qmax)); the zero point
// is rounded with a straight-through estimator, so it learns as a real number (LSQ+).
#include <cmath>

#include "train/grad.h"

namespace lowbit::train {

namespace {

std::vector<Tensor> g_FakeQuant(const GradContext& c) {
  const Tensor& x = c.in(0);
  Tensor scale = c.in(1), zp = c.in(2);
  int64_t qmin = c.node.attr_int("qmin", 0), qmax = c.node.attr_int("qmax", 255);
  float gscale = c.node.attr_float("grad_scale", 1.f);
  int64_t S = scale.numel(), inner = 1;
  if (S > 1) {
    int64_t axis = c.node.attr_int("axis", 1);
    if (axis < 0) axis += x.rank();
    check(axis >= 0 && axis < x.rank() && x.dim((int)axis) == S, c.where(), ": ", S, " scales do not match axis ", axis);
    for (int d = (int)axis + 1; d < x.rank(); ++d) inner *= x.dim(d);
  }
  Tensor g = c.gout(0);
  const float* px = x.data<float>();
  const float* pg = g.data<float>();
  const float* ps = scale.data<float>();
  const float* pz = zp.data<float>();
  Tensor gx = c.wants(0) ? Tensor::uninitialized(DType::Float32, x.shape()) : Tensor();
  float* pgx = gx.defined() ? gx.data<float>() : nullptr;
  std::vector<double> gs((size_t)S, 0.0), gz((size_t)S, 0.0);
  for (int64_t i = 0; i < x.numel(); ++i) {
    int64_t k = S > 1 ? (i / inner) % S : 0;
    float z = std::nearbyint(pz[k]);
    float v = px[i] / ps[k];
    float q = std::nearbyint(v) + z;
    if (std::isnan(v)) {
      if (pgx) pgx[i] = 0.f;
      continue;
    }
    if (q < (float)qmin || q > (float)qmax) {
      float edge = q < (float)qmin ? (float)qmin : (float)qmax;
      if (pgx) pgx[i] = 0.f;
      gs[(size_t)k] += (double)pg[i] * (edge - z);
      gz[(size_t)k] -= (double)pg[i] * ps[k];
    } else {
      if (pgx) pgx[i] = pg[i];
      gs[(size_t)k] += (double)pg[i] * (std::nearbyint(v) - v);
    }
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
