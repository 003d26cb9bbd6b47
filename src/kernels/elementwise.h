// Vectorised float32 element-wise functions, compiled for AVX-512, AVX2 and baseline x86-64 and chosen at run time
// (GCC target_clones). Each is computed in double and rounded once to float, so it is within 1 ulp of the exact
// value on every machine, and every clone gives the same bits (element-wise, no FMA contraction, no reordering).
#pragma once
#include <cstdint>

namespace lowbit {

// y = 1 / (1 + e^-x); NaN stays NaN.
void sigmoid_f32(const float* x, float* y, int64_t n);
// y = e^x; NaN stays NaN, overflow gives +inf, underflow 0 or a subnormal.
void exp_f32(const float* x, float* y, int64_t n);

// One softmax row: m = max x, e_k = e^(x_k - m) with the difference rounded to float first (as the reference
// kernel does), y_k = e_k / sum e, in double, rounded once: within 1 ulp of the exact value of that expression.
// `scratch` holds n doubles.
void softmax_row_f32(const float* x, float* y, int64_t n, double* scratch);

// Minimum and maximum of n floats; false when any is NaN or infinite (lo/hi are then meaningless). Computed in 16
// fixed lanes (element i in lane i % 16, the tail in lane 0) combined in lane order, so the result does not depend
// on the vector width of the machine.
bool minmax_f32(const float* x, int64_t n, float& lo, float& hi);

}  // namespace lowbit
