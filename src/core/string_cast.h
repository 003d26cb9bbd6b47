// ONNX Cast to and from string tensors, element by element, formatted and parsed as ONNX Runtime does.
//
// Numbers to strings: float32 and float64 in the shortest decimal form that reads back as the same value (the
// form of ONNX's test data, NumPy's: 0.6048455f gives "0.6048455", 1e-5f "1e-05", 3.0f "3"; ONNX Runtime prints
// eight digits instead, "0.60484552", which does not always round-trip a float32), float16/bfloat16 as their float32
// value, "NaN", "INF" and "-INF"; integers in decimal; bool as "1" / "0". Locale-independent (std::to_chars).
// Strings to numbers: leading white space is skipped, then the longest numeric prefix is read, as strtod / strtoll
// read it ("+7", " 2.5", "1.5e" -> 1.5, "0x10" -> 16 for floats; "1.5" -> 1 for integers); "inf", "infinity" and
// "nan" in any case, with an optional sign, are the special values; beyond the type's range a float becomes +-inf
// (or 0), as in strtof and ONNX Runtime. Floats are rounded once, to the target type (ONNX Runtime goes through a
// double: "1.00000005960464477539062501" gives it 1, here the nearest float32, 1 + 2^-23). Bool reads an integer
// (non-zero is true). A string with no numeric prefix, or an integer out of int64/uint64 range, is an error naming
// the element.
#pragma once
#include <string>
#include <vector>

#include "core/tensor.h"

namespace lowbit {

// The elements of a numeric (or 4-bit) tensor as strings.
std::vector<std::string> format_as_strings(const Tensor& t);
// A string tensor parsed into a numeric (or 4-bit) dtype.
Tensor parse_strings(const Tensor& t, DType to);

}  // namespace lowbit
