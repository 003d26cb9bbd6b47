// The one requantization primitive: an int32 accumulator (a sum of products of integer codes, on the scale
// s_in * s_w) to an integer code on the output grid (scale s_out, zero point z_out). docs/requantize.md derives it.
//
//   q = clamp(round(acc * M) + z_out, qmin, qmax),   M = s_in * s_w / s_out (real, > 0)
//
// How the target computes acc * M and rounds it is its arithmetic (backends/profile.h, "requantize"):
//   Float       M held as a float32; v = float(acc) * M in float32; v rounded (ONNX Runtime's MLAS, FBGEMM,
//               QNNPACK's fp32 path).
//   FixedPoint  M = m0 * 2^-(31 + shift) with m0 in [2^30, 2^31) (a Q31 multiplier) and shift >= -31; the exact
//               product acc * m0 (64-bit) is divided by 2^(31 + shift) with the named rounding. half_away is
//               gemmlowp/TFLite's two-step form, bit for bit: SaturatingRoundingDoublingHighMul (acc * m0 / 2^31
//               to nearest, ties towards +infinity: its nudge for negative products is 1 - 2^30), then
//               RoundingDivideByPOT by 2^shift (ties away from zero); half_up and half_even round the exact
//               quotient once.
//   Shift       M = 2^-shift exactly (power-of-two scales): acc / 2^shift rounded (a left shift for shift < 0).
// Rounding of a tie: half_even (to even), half_away (away from zero), half_up (towards +infinity).
// No floating-point state is read: results do not depend on the FPU rounding mode or build flags.
#pragma once
#include "kernels/int_gemm.h"
#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

namespace lowbit {

enum class RequantKind { Float, FixedPoint, Shift };
enum class TieRounding { HalfEven, HalfAway, HalfUp };

struct RequantParams {
  RequantKind kind = RequantKind::Float;
  TieRounding rounding = TieRounding::HalfEven;
  float scale = 0;     // Float: the float32 multiplier
  int32_t m0 = 0;      // FixedPoint: the Q31 multiplier
  int shift = 0;       // FixedPoint / Shift: the right shift (negative: left)
};

// The parameters for a real multiplier M > 0. Float keeps float(M); FixedPoint rounds M's mantissa to 31 bits
// (TFLite's QuantizeMultiplier); Shift needs M to be an exact power of two (Error otherwise, naming `where`).
RequantParams make_requant(double multiplier, RequantKind kind, TieRounding rounding, const std::string& where);

int32_t requantize(int32_t acc, const RequantParams& p, int32_t zero_point, int32_t qmin, int32_t qmax);
// Ties-to-even rounding for results that only matter within +-2^21 (every 4- to 16-bit grid): v beyond +-2^22 is
// clamped first (it saturates such a grid either way), then rounded exactly by adding and subtracting 1.5 * 2^23,
// which vectorises (std::nearbyint is a library call on baseline x86-64). NaN stays NaN.
inline float round_even_near(float v) {
  const float lim = 4194304.f, magic = 12582912.f;
  v = std::min(std::max(v, -lim), lim);  // std::max(NaN, -lim) and std::min(NaN, lim) are NaN
  return (v + magic) - magic;
}

// requantize over n accumulators that share one multiplier, into 8-bit codes: the same codes as requantize() per
// element. The Float multiplier with ties to even (ONNX Runtime's arithmetic) runs as a loop the compiler vectorises:
// v clamped to [-2^22, 2^22] (beyond it every grid within +-2^21 saturates anyway), rounded to nearest even by adding
// and subtracting 1.5 * 2^23 (exact in float32 for |v| <= 2^22); requantize_add / requantize_mul round so too. Other
// forms call requantize() per element. The loop is compiled for AVX-512, AVX2 and the baseline; `isa` picks one
// (by default the CPU's best, as kernels/int_gemm.h picks; tests sweep every one the CPU runs).
template <typename Q>
void requantize_run(const int32_t* acc, int64_t n, const RequantParams& p, int32_t zero_point, int32_t qmin,
                    int32_t qmax, Q* out, IntIsa isa = int_gemm_isa());
// acc * M rounded as `p` says, before the zero point and the clamp (requantize = clamp(this + zero_point)).
int64_t requantize_raw(int32_t acc, const RequantParams& p);
// v rounded to an integer value with the tie rule `r` (float32).
float round_ties(float v, TieRounding r);

// The float-bias form (profile "requantize": {"bias": "float"}), for targets that keep the bias in float and
// requantize through float: the accumulator is dequantized and the bias added, v = float(acc) * s_acc + b with
// s_acc = float32(s_x * s_w) (float32, in this order, no fused multiply-add: -ffp-contract=off), and v is quantized
// as QuantizeLinear does, q = clamp(round(v / s_y) + z, qmin, qmax). OpenVINO's CPU plugin computes a quantized
// Conv/MatMul this way (oneDNN's output scales and float bias, then the FakeQuantize post-op); a layer whose output
// has no quantizer (its Add fused into the convolution) returns v itself.
inline float dequantize_acc(int32_t acc, float s_acc, float bias) { return (float)acc * s_acc + bias; }
int32_t quantize_float(float v, float sy, int32_t zero_point, TieRounding r, int32_t qmin, int32_t qmax);

// Integer Add of two quantized tensors a (s_a, z_a) and b (s_b, z_b) to the grid (s_y, z_y), per arithmetic:
//   Float       y = round(((s_a * (a - z_a)) + (s_b * (b - z_b))) / s_y) + z_y, float32 in this order (ONNX
//               Runtime's QLinearAdd reference loop, and exactly the float DequantizeLinear -> Add ->
//               QuantizeLinear of the QDQ file);
//   FixedPoint  TFLite's integer Add: both inputs shifted left by 20 bits, each scaled by its Q31 multiplier
//               s / (2 max(s_a, s_b)), summed, and the sum scaled by 2 max(s_a, s_b) / (2^20 s_y), each scaling
//               the requantize_raw of a FixedPoint multiplier;
//   Shift       power-of-two scales: the inputs shifted left onto the finer of the two grids (exact), the sum
//               shifted right onto the output grid with the rounding rule.
// then clamped to [qmin, qmax] (the grid, narrowed by a fused Relu).
struct AddRequant {
  RequantKind kind = RequantKind::Float;
  TieRounding rounding = TieRounding::HalfEven;
  float sa = 1, sb = 1, sy = 1;  // Float
  RequantParams pa, pb, py;      // FixedPoint: input and output multipliers; Shift: py only
  int la = 0, lb = 0;            // left shifts of the inputs (FixedPoint: 20 both)
  int32_t za = 0, zb = 0, zy = 0, qmin = 0, qmax = 255;
};
// Error naming `where` when the scales do not fit the arithmetic (Shift: not powers of two, or more than 20 bits
// apart).
AddRequant make_add_requant(float sa, float sb, float sy, RequantKind kind, TieRounding rounding,
                            const std::string& where);
int32_t requantize_add(int32_t a, int32_t b, const AddRequant& p);

// Integer Mul of two quantized tensors: acc = (a - z_a) * (b - z_b) (exact in int32), whose real value is
// acc * s_a * s_b, onto (s_y, z_y) with M = s_a * s_b / s_y:
//   Float             y = clamp(round(float(acc) * M + z_y)), M = float32(float32(s_a * s_b) / s_y), the zero point
//                     added in float32 before rounding: ONNX Runtime's QLinearMul (MLAS), bit for bit;
//   FixedPoint/Shift  the primitive: y = requantize(acc, M, z_y, qmin, qmax) (TFLite's integer Mul for FixedPoint).
struct MulRequant {
  RequantParams p;  // FixedPoint / Shift
  float m = 0;      // Float
  int32_t za = 0, zb = 0, zy = 0, qmin = 0, qmax = 255;
};
// Error naming `where` when M does not fit the arithmetic.
MulRequant make_mul_requant(float sa, float sb, float sy, RequantKind kind, TieRounding rounding, const std::string& where);
int32_t requantize_mul(int32_t a, int32_t b, const MulRequant& p);

// Codes moved from one grid (s_x, z_x) to another (s_y, z_y), as a Concat with separate input scales needs: the
// table of the 256 input codes lo, lo + 1, ..., lo + 255 (lo = 0 for uint8, -128 for int8) to output codes in
// [qmin, qmax], per arithmetic:
//   Float             y = clamp(round(float32(s_x * (q - z_x)) / s_y) + z_y): DequantizeLinear then QuantizeLinear,
//                     which is ONNX Runtime's QLinearConcat table;
//   FixedPoint/Shift  the primitive with M = s_x / s_y: y = requantize(q - z_x, M, z_y, qmin, qmax).
// Error naming `where` when M does not fit the arithmetic.
std::vector<int32_t> rescale_table(float sx, int32_t zx, int32_t lo, float sy, int32_t zy, int32_t qmin, int32_t qmax,
                                   RequantKind kind, TieRounding rounding, const std::string& where);

// acc / 2^shift (shift in 0..62) rounded as `r`, exactly, on 64-bit values.
int64_t rounding_shift_right(int64_t v, int shift, TieRounding r);

}  // namespace lowbit
