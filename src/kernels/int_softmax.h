// Integer softmax with an exponential table: codes in, codes out, no dequantized tensor. This is the arithmetic
// of ONNX Runtime's CPU QLinearSoftmax (the kernel its QDQ fusion puts where DequantizeLinear -> Softmax ->
// QuantizeLinear stand), written out so that the integer engine computes what that target computes:
//
//   table[k] = float32(exp((k - 255) * s_x + c)),  k = 0..255,  c = max(0, ln(float32(FLT_MAX / D)) - 5)
//   per row (D elements along the softmax axis, codes x, largest code x_max):
//     e_i   = table[x_i - x_max + 255]                (exp of the dequantized value minus the row's maximum,
//                                                       times e^c so that small values keep their precision)
//     sum   = e_0 + e_1 + ... + e_{D-1}               (float32, in this order)
//     inv   = floor(1 / s_y)                          (float32: the output scale's reciprocal, truncated)
//     y_i   = nearbyint((e_i * inv) / sum) + z_y      (float32 product and quotient, ties to even)
//   then saturated to the 8-bit type (uint8: above 255 becomes 255; int8: clamped to [-128, 127]).
// One more case is the target's, kept as it is: when a row has fewer than about inv / e^5 elements and one of them
// dominates, e_i * inv overflows float32 to +inf; ONNX Runtime 1.31.1 on x86-64 then gives z_y for uint8 (the
// conversion of +inf to an unsigned 32-bit value yields 0) and 127 for int8 (+inf converts to INT32_MIN, plus z_y
// wraps to a large positive int32, saturated). tests/ort/check_engine.py compares both cases with ONNX Runtime.
//
// The difference from the float simulation (DequantizeLinear, Softmax, QuantizeLinear) is `inv`: 1 / s_y is
// truncated to an integer, so outputs are scaled by floor(1 / s_y) * s_y <= 1 (for s_y = 1/274.49, 0.9982).
// docs/requantize.md has the derivation.
#pragma once
#include <cstdint>

namespace lowbit {

struct SoftmaxTable {
  float exp[256];
};

// The table for input scale `s_x` and `d` elements per row (d >= 1).
SoftmaxTable make_softmax_table(float s_x, int64_t d);

// Softmax along the middle axis of x viewed as [outer, d, inner] (element j of row (o, i) at
// x[o * d * inner + j * inner + i]); y has the same layout. T is uint8_t or int8_t.
template <typename T>
void softmax_exp_table(const T* x, T* y, int64_t outer, int64_t d, int64_t inner, const SoftmaxTable& table,
                       float s_y, int32_t z_y);

}  // namespace lowbit
