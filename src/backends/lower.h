// Lowering a QDQ model to lowbit's integer program under a hardware profile's arithmetic.
//
// Every Conv / Gemm / MatMul whose activation input, weight (and bias) come through DequantizeLinear and whose
// output (after an optional Relu or constant Clip, its only reader) goes only into a QuantizeLinear becomes one
// integer node (domain "lowbit.int": IntConv / IntMatMul, runtime/ops_quant.cpp): integer codes in, int32
// accumulation with an int32 bias, requantization by kernels/requantize.h with the profile's multiplier form and
// rounding, codes out. Ops that only move or select elements between the DequantizeLinear and the layer
// (Reshape, Flatten, Transpose, Split, Gather, Slice, MaxPool, ...) run on the codes instead. The pattern is what
// lowbit's exporter and ONNX Runtime's quantize_static write. Everything
// else keeps its QDQ form and runs in float between DequantizeLinear and QuantizeLinear: the float islands, which
// the report lists by op type. An Add of two per-tensor DequantizeLinear outputs whose result goes, through an
// optional Relu, only into a QuantizeLinear becomes IntAdd (kernels/requantize.h: requantize_add, with the
// profile's arithmetic). A float bias (profiles with int32_bias off) is rounded to int32 at the product scale
// s_x * s_w[c] (half to even), as the runtimes that take a float bias do before accumulating. A Softmax between a
// per-tensor 8-bit DequantizeLinear and a QuantizeLinear of the same type becomes IntSoftmax (kernels/int_softmax.h)
// when the profile's integer_ops.softmax is "exp_table"; with "float" it stays a float island.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "backends/profile.h"
#include "ir/graph.h"

namespace lowbit::backends {

struct LowerReport {
  int integer_layers = 0;
  int float_output_layers = 0;  // of those, float-bias layers without an output quantizer (their output is float)
  std::vector<std::pair<std::string, std::string>> layers;  // (integer node, its output codes), in execution order
  std::map<std::string, int> float_islands;  // op type -> nodes still computing in float (QDQ around them)
  std::vector<std::string> skipped;          // "node: why" for Conv/Gemm/MatMul (and fitting Add) nodes left in float
};

Model lower_to_integer(const Model& qdq, const Profile& profile, LowerReport* report = nullptr);

}  // namespace lowbit::backends
