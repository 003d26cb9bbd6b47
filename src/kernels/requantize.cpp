#include "kernels/requantize.h"

#include <cmath>
#include <cstdlib>
#include <limits>

#include "core/error.h"

namespace lowbit {

int64_t rounding_shift_right(int64_t v, int shift, TieRounding r) {
  if (shift <= 0) return v;
  int64_t floor_q = v >> shift;                          // arithmetic shift: floor division by 2^shift
  int64_t rem = v & ((int64_t(1) << shift) - 1);         // in [0, 2^shift): two's complement low bits
  int64_t half = int64_t(1) << (shift - 1);
  if (rem > half) return floor_q + 1;
  if (rem < half) return floor_q;
  // A tie: v / 2^shift = floor_q + 1/2.
  switch (r) {
    case TieRounding::HalfUp: return floor_q + 1;
    case TieRounding::HalfEven: return (floor_q & 1) ? floor_q + 1 : floor_q;
    case TieRounding::HalfAway: return floor_q >= 0 ? floor_q + 1 : floor_q;  // floor_q + 1/2 < 0 iff floor_q < 0
  }
  return floor_q;
}

namespace {
inline bool near_grid(int32_t zero_point, int32_t qmin, int32_t qmax) {
  return std::abs(zero_point) <= (1 << 21) && qmin >= -(1 << 21) && qmax <= (1 << 21);
}
}  // namespace

float round_ties(float v, TieRounding r) {
  float f = std::floor(v), d = v - f;
  if (d > 0.5f) return f + 1;
  if (d < 0.5f) return f;
  switch (r) {
    case TieRounding::HalfUp: return f + 1;
    case TieRounding::HalfEven: return std::fmod(f, 2.f) == 0 ? f : f + 1;
    case TieRounding::HalfAway: return v > 0 ? f + 1 : f;
  }
  return f;
}

namespace {

// gemmlowp's SaturatingRoundingDoublingHighMul: a * b / 2^31 to nearest, ties towards +infinity (the nudge
// 1 - 2^30 of a negative product, then division truncating towards zero); a = b = INT32_MIN saturates.
int32_t doubling_high_mul(int32_t a, int32_t b) {
  if (a == b && a == std::numeric_limits<int32_t>::min()) return std::numeric_limits<int32_t>::max();
  int64_t ab = (int64_t)a * (int64_t)b;
  int64_t nudge = ab >= 0 ? (int64_t(1) << 30) : (1 - (int64_t(1) << 30));
  return (int32_t)((ab + nudge) / (int64_t(1) << 31));  // C++ division truncates towards zero
}

// gemmlowp's RoundingDivideByPOT: x / 2^e, ties away from zero.
int32_t divide_by_pot(int32_t x, int e) {
  if (e <= 0) return x;
  int32_t mask = (int32_t)((int64_t(1) << e) - 1);
  int32_t rem = x & mask;
  int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
  return (x >> e) + (rem > threshold ? 1 : 0);
}

int64_t saturating_left_shift(int64_t v, int s) {
  if (v == 0) return 0;
  if (s >= 62) return v > 0 ? std::numeric_limits<int64_t>::max() / 2 : std::numeric_limits<int64_t>::min() / 2;
  int64_t lim = std::numeric_limits<int64_t>::max() >> s;
  if (v > lim) return std::numeric_limits<int64_t>::max() / 2;
  if (v < -lim) return std::numeric_limits<int64_t>::min() / 2;
  return v * (int64_t(1) << s);
}

}  // namespace

RequantParams make_requant(double multiplier, RequantKind kind, TieRounding rounding, const std::string& where) {
  check(std::isfinite(multiplier) && multiplier > 0, where, ": the requantization multiplier must be finite and "
        "positive, got ", multiplier);
  RequantParams p;
  p.kind = kind;
  p.rounding = rounding;
  if (kind == RequantKind::Float) {
    p.scale = (float)multiplier;
    check(std::isfinite(p.scale) && p.scale > 0, where, ": the multiplier ", multiplier, " does not fit a float32");
    return p;
  }
  int e = 0;
  double mant = std::frexp(multiplier, &e);  // multiplier = mant * 2^e, mant in [0.5, 1)
  if (kind == RequantKind::Shift) {
    check(mant == 0.5, where, ": shift-only requantization needs power-of-two scales; the multiplier ", multiplier,
          " (s_in * s_w / s_out) is not a power of two");
    p.shift = 1 - e;  // multiplier = 2^(e - 1)
    check(p.shift > -31 && p.shift < 62, where, ": the multiplier 2^", e - 1, " is out of range for a shift");
    return p;
  }
  int64_t m0 = (int64_t)std::llround(mant * (double)(int64_t(1) << 31));
  if (m0 == (int64_t(1) << 31)) {  // the mantissa rounded up to 1.0
    m0 /= 2;
    ++e;
  }
  p.m0 = (int32_t)m0;
  p.shift = -e;  // multiplier = m0 * 2^-31 * 2^e = m0 * 2^-(31 + shift)
  check(p.shift >= -31 && p.shift <= 30, where, ": the multiplier ", multiplier, " is out of range for a Q31 "
        "fixed-point multiplier");
  return p;
}

int64_t requantize_raw(int32_t acc, const RequantParams& p) {
  switch (p.kind) {
    case RequantKind::Float: {
      float v = round_ties((float)acc * p.scale, p.rounding);
      // Clamp in float first: a product beyond int64 would make the conversion undefined.
      v = std::fmax(std::fmin(v, 4.0e9f), -4.0e9f);
      return (int64_t)v;
    }
    case RequantKind::FixedPoint:
      if (p.rounding == TieRounding::HalfAway) {
        int64_t left = p.shift < 0 ? -p.shift : 0;
        int64_t shifted = saturating_left_shift(acc, (int)left);
        int32_t x = (int32_t)std::min<int64_t>(std::max<int64_t>(shifted, std::numeric_limits<int32_t>::min()),
                                               std::numeric_limits<int32_t>::max());
        return divide_by_pot(doubling_high_mul(x, p.m0), p.shift > 0 ? p.shift : 0);
      }
      return rounding_shift_right((int64_t)acc * (int64_t)p.m0, 31 + p.shift, p.rounding);  // shift 0..61
    case RequantKind::Shift:
      return p.shift >= 0 ? rounding_shift_right(acc, p.shift, p.rounding) : saturating_left_shift(acc, -p.shift);
  }
  return 0;
}

int32_t quantize_float(float v, float sy, int32_t zero_point, TieRounding r, int32_t qmin, int32_t qmax) {
  float q = round_ties(v / sy, r);
  if (q != q) return zero_point;  // NaN: the zero point, as quant::quantize_one
  q = std::fmax(std::fmin(q, 4.0e9f), -4.0e9f);
  return (int32_t)std::min<int64_t>(std::max<int64_t>((int64_t)q + zero_point, qmin), qmax);
}

int32_t requantize(int32_t acc, const RequantParams& p, int32_t zero_point, int32_t qmin, int32_t qmax) {
  int64_t q = requantize_raw(acc, p) + zero_point;
  return (int32_t)std::min<int64_t>(std::max<int64_t>(q, qmin), qmax);
}

namespace {
// The float multiplier's loop, compiled once per instruction set below: the same IEEE operations in each (no FMA
// contraction in this build, -ffp-contract=off), so every version gives the same codes; only the vector width
// differs.
template <typename Q>
inline __attribute__((always_inline)) void requantize_float_loop(const int32_t* acc, int64_t n, float m,
                                                                 int32_t zero_point, int32_t qmin, int32_t qmax,
                                                                 Q* out) {
  for (int64_t i = 0; i < n; ++i) {
    // finite: m is a finite float32 and |acc| < 2^31
    float r = round_even_near((float)acc[i] * m);
    int32_t q = (int32_t)r + zero_point;
    out[i] = (Q)(q < qmin ? qmin : q > qmax ? qmax : q);
  }
}
template <typename Q>
__attribute__((target("avx512f,avx512bw,avx512vl"))) void requantize_float_avx512(const int32_t* acc, int64_t n,
                                                                                  float m, int32_t zp, int32_t qmin,
                                                                                  int32_t qmax, Q* out) {
  requantize_float_loop(acc, n, m, zp, qmin, qmax, out);
}
template <typename Q>
__attribute__((target("avx2"))) void requantize_float_avx2(const int32_t* acc, int64_t n, float m, int32_t zp,
                                                           int32_t qmin, int32_t qmax, Q* out) {
  requantize_float_loop(acc, n, m, zp, qmin, qmax, out);
}
template <typename Q>
void requantize_float_base(const int32_t* acc, int64_t n, float m, int32_t zp, int32_t qmin, int32_t qmax, Q* out) {
  requantize_float_loop(acc, n, m, zp, qmin, qmax, out);
}
}  // namespace

template <typename Q>
void requantize_run(const int32_t* acc, int64_t n, const RequantParams& p, int32_t zero_point, int32_t qmin,
                    int32_t qmax, Q* out, IntIsa isa) {
  const bool fast = p.kind == RequantKind::Float && p.rounding == TieRounding::HalfEven &&
                    near_grid(zero_point, qmin, qmax);
  if (!fast) {
    for (int64_t i = 0; i < n; ++i) out[i] = (Q)requantize(acc[i], p, zero_point, qmin, qmax);
    return;
  }
  check(int_isa_supported(isa), "requantize_run: this CPU cannot run ", int_isa_name(isa), " kernels");
  switch (isa) {
    case IntIsa::Avx512Vnni: return requantize_float_avx512(acc, n, p.scale, zero_point, qmin, qmax, out);
    case IntIsa::Avx2: return requantize_float_avx2(acc, n, p.scale, zero_point, qmin, qmax, out);
    case IntIsa::Scalar: return requantize_float_base(acc, n, p.scale, zero_point, qmin, qmax, out);
  }
}
template void requantize_run<int8_t>(const int32_t*, int64_t, const RequantParams&, int32_t, int32_t, int32_t, int8_t*,
                                     IntIsa);
template void requantize_run<uint8_t>(const int32_t*, int64_t, const RequantParams&, int32_t, int32_t, int32_t,
                                      uint8_t*, IntIsa);

MulRequant make_mul_requant(float sa, float sb, float sy, RequantKind kind, TieRounding rounding,
                              const std::string& where) {
  check(sa > 0 && sb > 0 && sy > 0 && std::isfinite(sa) && std::isfinite(sb) && std::isfinite(sy), where,
        ": Mul scales must be finite and positive");
  MulRequant r;
  r.p.kind = kind;
  r.p.rounding = rounding;
  if (kind == RequantKind::Float) {
    r.m = sa * sb / sy;
    check(std::isfinite(r.m) && r.m > 0, where, ": the Mul multiplier s_a * s_b / s_y does not fit a float32");
  } else {
    r.p = make_requant((double)sa * (double)sb / (double)sy, kind, rounding, where);
  }
  return r;
}

int32_t requantize_mul(int32_t a, int32_t b, const MulRequant& r) {
  int32_t acc = (a - r.za) * (b - r.zb);  // |acc| <= 255^2
  int64_t q;
  if (r.p.kind == RequantKind::Float && r.p.rounding == TieRounding::HalfEven && near_grid(r.zy, r.qmin, r.qmax)) {
    q = (int64_t)round_even_near((float)acc * r.m + (float)r.zy);
  } else if (r.p.kind == RequantKind::Float) {
    float v = round_ties((float)acc * r.m + (float)r.zy, r.p.rounding);
    q = (int64_t)std::fmax(std::fmin(v, 4.0e9f), -4.0e9f);
  } else {
    q = requantize_raw(acc, r.p) + r.zy;
  }
  return (int32_t)std::min<int64_t>(std::max<int64_t>(q, r.qmin), r.qmax);
}

std::vector<int32_t> rescale_table(float sx, int32_t zx, int32_t lo, float sy, int32_t zy, int32_t qmin, int32_t qmax,
                                   RequantKind kind, TieRounding rounding, const std::string& where) {
  check(sx > 0 && sy > 0 && std::isfinite(sx) && std::isfinite(sy), where, ": scales must be finite and positive");
  std::vector<int32_t> t(256);
  if (kind == RequantKind::Float) {
    for (int32_t k = 0; k < 256; ++k) t[(size_t)k] = quantize_float(sx * (float)(lo + k - zx), sy, zy, rounding, qmin, qmax);
    return t;
  }
  RequantParams p = make_requant((double)sx / (double)sy, kind, rounding, where);
  for (int32_t k = 0; k < 256; ++k) t[(size_t)k] = requantize(lo + k - zx, p, zy, qmin, qmax);
  return t;
}

AddRequant make_add_requant(float sa, float sb, float sy, RequantKind kind, TieRounding rounding,
                            const std::string& where) {
  check(sa > 0 && sb > 0 && sy > 0 && std::isfinite(sa) && std::isfinite(sb) && std::isfinite(sy), where,
        ": Add scales must be finite and positive");
  AddRequant p;
  p.kind = kind;
  p.rounding = rounding;
  p.sa = sa, p.sb = sb, p.sy = sy;
  if (kind == RequantKind::FixedPoint) {
    constexpr int kLeftShift = 20;  // TFLite's, for 8-bit inputs: 255 * 2^20 fits int32 with room for the sum
    double twice_max = 2.0 * std::max((double)sa, (double)sb);
    p.la = p.lb = kLeftShift;
    p.pa = make_requant((double)sa / twice_max, kind, rounding, where);
    p.pb = make_requant((double)sb / twice_max, kind, rounding, where);
    p.py = make_requant(twice_max / ((double)(1 << kLeftShift) * (double)sy), kind, rounding, where);
  } else if (kind == RequantKind::Shift) {
    int ea = 0, eb = 0, ey = 0;
    check(std::frexp(sa, &ea) == 0.5f && std::frexp(sb, &eb) == 0.5f && std::frexp(sy, &ey) == 0.5f, where,
          ": shift-only Add needs power-of-two scales, got ", sa, ", ", sb, " and ", sy);
    int em = std::min(ea, eb);
    p.la = ea - em;
    p.lb = eb - em;
    check(p.la <= 20 && p.lb <= 20, where, ": the Add input scales ", sa, " and ", sb, " are more than 2^20 apart");
    p.py = make_requant(std::ldexp(1.0, em - ey), kind, rounding, where);
  }
  return p;
}

int32_t requantize_add(int32_t a, int32_t b, const AddRequant& p) {
  int64_t q = 0;
  int32_t da = a - p.za, db = b - p.zb;
  switch (p.kind) {
    case RequantKind::Float: {
      float v = (p.sa * (float)da + p.sb * (float)db) / p.sy;
      if (p.rounding == TieRounding::HalfEven && near_grid(p.zy, p.qmin, p.qmax)) {
        q = (int64_t)round_even_near(v);
      } else {
        v = round_ties(v, p.rounding);
        q = (int64_t)std::fmax(std::fmin(v, 4.0e9f), -4.0e9f);
      }
      break;
    }
    case RequantKind::FixedPoint: {
      int64_t xa = requantize_raw(da * (1 << p.la), p.pa), xb = requantize_raw(db * (1 << p.lb), p.pb);
      int64_t sum = std::min<int64_t>(std::max<int64_t>(xa + xb, std::numeric_limits<int32_t>::min()),
                                      std::numeric_limits<int32_t>::max());
      q = requantize_raw((int32_t)sum, p.py);
      break;
    }
    case RequantKind::Shift:
      q = requantize_raw(da * (1 << p.la) + db * (1 << p.lb), p.py);
      break;
  }
  q += p.zy;
  return (int32_t)std::min<int64_t>(std::max<int64_t>(q, p.qmin), p.qmax);
}

}  // namespace lowbit
