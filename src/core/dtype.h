// Element types of tensors; the numeric values equal ONNX TensorProto.DataType.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace lowbit {

enum class DType : int32_t {
  Undefined = 0,
  Float32 = 1,
  UInt8 = 2,
  Int8 = 3,
  UInt16 = 4,
  Int16 = 5,
  Int32 = 6,
  Int64 = 7,
  String = 8,
  Bool = 9,
  Float16 = 10,
  Float64 = 11,
  UInt32 = 12,
  UInt64 = 13,
  BFloat16 = 16,
  // 4-bit integers (ONNX IR 10+): stored one element per byte in memory (a sign-extended int8 / a uint8 in
  // [0, 15]), packed two per byte in ONNX files. No generic kernel reads them (visit_dtype refuses them): they are
  // weight codes for DequantizeLinear, cast, moved and written; Tensor::retyped views them as int8/uint8.
  UInt4 = 21,
  Int4 = 22,
};

// Size of one element in bytes; 0 for Undefined and String (a string tensor has no byte buffer).
size_t dtype_size(DType t);
const char* dtype_name(DType t);
bool dtype_is_float(DType t);    // float16/bfloat16/float32/float64
bool dtype_is_integer(DType t);  // signed or unsigned integer (not bool)
bool dtype_is_signed(DType t);
bool dtype_is_4bit(DType t);  // int4 / uint4
// The 8-bit type an int4/uint4 tensor is stored as (int8 / uint8); t itself otherwise.
DType dtype_storage(DType t);
// Maps an ONNX data type number; throws Error for unknown types, Unsupported for those lowbit does not store
// (complex, float8, float4, 2-bit).
DType dtype_from_onnx(int32_t onnx_type);

struct Float16 {
  uint16_t bits = 0;
};
struct BFloat16 {
  uint16_t bits = 0;
};
float half_to_float(uint16_t h);
uint16_t float_to_half(float f);  // round to nearest even
float bfloat16_to_float(uint16_t b);
uint16_t float_to_bfloat16(float f);  // round to nearest even

template <typename T>
constexpr DType dtype_of();
template <> constexpr DType dtype_of<float>() { return DType::Float32; }
template <> constexpr DType dtype_of<double>() { return DType::Float64; }
template <> constexpr DType dtype_of<int8_t>() { return DType::Int8; }
template <> constexpr DType dtype_of<uint8_t>() { return DType::UInt8; }
template <> constexpr DType dtype_of<int16_t>() { return DType::Int16; }
template <> constexpr DType dtype_of<uint16_t>() { return DType::UInt16; }
template <> constexpr DType dtype_of<int32_t>() { return DType::Int32; }
template <> constexpr DType dtype_of<uint32_t>() { return DType::UInt32; }
template <> constexpr DType dtype_of<int64_t>() { return DType::Int64; }
template <> constexpr DType dtype_of<uint64_t>() { return DType::UInt64; }
template <> constexpr DType dtype_of<bool>() { return DType::Bool; }
template <> constexpr DType dtype_of<Float16>() { return DType::Float16; }
template <> constexpr DType dtype_of<BFloat16>() { return DType::BFloat16; }

}  // namespace lowbit
