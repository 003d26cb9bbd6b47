// exp in double by range reduction: x = k ln2 + r with |r| <= ln2/2, e^r by its Taylor series to r^8 (relative
// truncation error below 2.2e-10 there: far under half a float ulp, 3e-8, so one rounding to float stays within
// 1 ulp of the exact value), and 2^k put into the exponent bits. Every step is branch-free so the loops
// vectorise; arguments are clamped to [-745, 709] first, where e^x is a normal double or rounds to 0 in float.
#include "kernels/elementwise.h"

#include <bit>
#include <cmath>

namespace lowbit {

namespace {
inline double exp_core(double x) {
  x = x < -745.0 ? -745.0 : (x > 709.0 ? 709.0 : x);
  const double log2e = 1.4426950408889634, ln2_hi = 0.6931471805599453, ln2_lo = 2.3190468138462996e-17;
  const double shifter = 6755399441055744.0;  // 1.5 * 2^52: adding it rounds to an integer in the low bits
  double kd = x * log2e + shifter;
  int64_t k = std::bit_cast<int64_t>(kd) - std::bit_cast<int64_t>(shifter);
  kd -= shifter;
  double r = (x - kd * ln2_hi) - kd * ln2_lo;
  // Horner form of sum r^i / i!, i = 0..8.
  double p = 1.0 / 40320.0;
  p = p * r + 1.0 / 5040.0;
  p = p * r + 1.0 / 720.0;
  p = p * r + 1.0 / 120.0;
  p = p * r + 1.0 / 24.0;
  p = p * r + 1.0 / 6.0;
  p = p * r + 0.5;
  p = p * r + 1.0;
  p = p * r + 1.0;
  // 2^k in two halves, so k down to -1075 (a subnormal result) never builds an invalid exponent.
  int64_t k1 = k >> 1, k2 = k - k1;
  double s1 = std::bit_cast<double>((k1 + 1023) << 52), s2 = std::bit_cast<double>((k2 + 1023) << 52);
  return p * s1 * s2;
}
}  // namespace

__attribute__((target_clones("avx512f", "avx2", "default"))) void sigmoid_f32(const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    double v = x[i];
    double s = 1.0 / (1.0 + exp_core(-v));
    y[i] = v != v ? x[i] : (float)s;
  }
}

__attribute__((target_clones("avx512f", "avx2", "default"))) void exp_f32(const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    double v = x[i];
    double e = v > 89.0 ? HUGE_VAL : exp_core(v);  // above 89, e^x overflows float
    y[i] = v != v ? x[i] : (float)e;
  }
}

__attribute__((target_clones("avx512f", "avx2", "default"))) void softmax_row_f32(const float* x, float* y, int64_t n,
                                                                                   double* e) {
  float mx = -HUGE_VALF;
  for (int64_t k = 0; k < n; ++k) mx = x[k] > mx ? x[k] : mx;
  for (int64_t k = 0; k < n; ++k) e[k] = exp_core((double)(x[k] - mx));
  double sum = 0;
  for (int64_t k = 0; k < n; ++k) sum += e[k];
  for (int64_t k = 0; k < n; ++k) y[k] = (float)(e[k] / sum);
}

__attribute__((target_clones("avx512f", "avx2", "default"))) bool minmax_f32(const float* x, int64_t n, float& lo,
                                                                              float& hi) {
  typedef float F16 __attribute__((vector_size(64)));
  typedef int32_t I16 __attribute__((vector_size(64)));
  const float inf = HUGE_VALF, big = 3.40282347e+38f;
  F16 vlo, vhi;
  for (int l = 0; l < 16; ++l) vlo[l] = inf, vhi[l] = -inf;
  I16 ok = {};
  ok = ok == 0;  // all lanes true (-1)
  int64_t body = n - n % 16;
  for (int64_t i = 0; i < body; i += 16) {
    F16 v;
    __builtin_memcpy(&v, x + i, sizeof v);
    F16 a = v < 0 ? -v : v;
    ok &= a <= big;  // false for NaN and +-Inf
    vlo = v < vlo ? v : vlo;
    vhi = v > vhi ? v : vhi;
  }
  bool finite = true;
  for (int64_t i = body; i < n; ++i) {
    float v = x[i];
    finite = finite && (v < 0 ? -v : v) <= big;
    vlo[0] = v < vlo[0] ? v : vlo[0];
    vhi[0] = v > vhi[0] ? v : vhi[0];
  }
  lo = inf, hi = -inf;
  for (int l = 0; l < 16; ++l) {
    lo = vlo[l] < lo ? vlo[l] : lo;
    hi = vhi[l] > hi ? vhi[l] : hi;
    finite = finite && ok[l] != 0;
  }
  return finite;
}

}  // namespace lowbit
