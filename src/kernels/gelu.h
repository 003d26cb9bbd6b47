// GELU and its derivative in double, one definition for the runtime op (opset 20's Gelu) and its gradient rule.
//   exact: x Phi(x) = 0.5 x (1 + erf(x / sqrt(2)));            derivative Phi(x) + x phi(x)
//   tanh:  0.5 x (1 + tanh(u)), u = sqrt(2 / pi) (x + a x^3), a = 0.044715;
//          derivative, with t = tanh(u): 0.5 (1 + t) + 0.5 x (1 - t^2) sqrt(2 / pi) (1 + 3 a x^2)
#pragma once
#include <cmath>

namespace lowbit {

inline constexpr double kGeluSqrt2OverPi = 0.79788456080286535588;  // sqrt(2 / pi)
inline constexpr double kGeluTanhA = 0.044715;
inline constexpr double kGeluInvSqrt2 = 0.70710678118654752440;     // 1 / sqrt(2)
inline constexpr double kGeluInvSqrt2Pi = 0.39894228040143267794;   // 1 / sqrt(2 pi)

inline double gelu(double x, bool tanh_form) {
  if (tanh_form) return 0.5 * x * (1 + std::tanh(kGeluSqrt2OverPi * (x + kGeluTanhA * x * x * x)));
  return 0.5 * x * (1 + std::erf(x * kGeluInvSqrt2));
}

inline double gelu_derivative(double x, bool tanh_form) {
  if (tanh_form) {
    const double t = std::tanh(kGeluSqrt2OverPi * (x + kGeluTanhA * x * x * x));
    return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * kGeluSqrt2OverPi * (1 + 3 * kGeluTanhA * x * x);
  }
  return 0.5 * (1 + std::erf(x * kGeluInvSqrt2)) + x * std::exp(-0.5 * x * x) * kGeluInvSqrt2Pi;
}

}  // namespace lowbit
