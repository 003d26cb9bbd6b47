// DType properties and the mapping from ONNX type numbers.
#include "core/dtype.h"

#include "core/error.h"

namespace lowbit {

size_t dtype_size(DType t) {
  switch (t) {
    case DType::Float32: case DType::Int32: case DType::UInt32: return 4;
    case DType::Float64: case DType::Int64: case DType::UInt64: return 8;
    case DType::Int16: case DType::UInt16: case DType::Float16: case DType::BFloat16: return 2;
    case DType::Int8: case DType::UInt8: case DType::Bool: case DType::Int4: case DType::UInt4: return 1;
    default: return 0;
  }
}

const char* dtype_name(DType t) {
  switch (t) {
    case DType::Float32: return "float32";
    case DType::Float64: return "float64";
    case DType::Float16: return "float16";
    case DType::BFloat16: return "bfloat16";
    case DType::Int8: return "int8";
    case DType::UInt8: return "uint8";
    case DType::Int16: return "int16";
    case DType::UInt16: return "uint16";
    case DType::Int32: return "int32";
    case DType::UInt32: return "uint32";
    case DType::Int64: return "int64";
    case DType::UInt64: return "uint64";
    case DType::Bool: return "bool";
    case DType::String: return "string";
    case DType::Int4: return "int4";
    case DType::UInt4: return "uint4";
    default: return "undefined";
  }
}

bool dtype_is_float(DType t) {
  return t == DType::Float32 || t == DType::Float64 || t == DType::Float16 || t == DType::BFloat16;
}

bool dtype_is_integer(DType t) {
  switch (t) {
    case DType::Int8: case DType::UInt8: case DType::Int16: case DType::UInt16:
    case DType::Int32: case DType::UInt32: case DType::Int64: case DType::UInt64: case DType::Int4: case DType::UInt4:
      return true;
    default: return false;
  }
}

bool dtype_is_signed(DType t) {
  return t == DType::Int8 || t == DType::Int16 || t == DType::Int32 || t == DType::Int64 || t == DType::Int4 ||
         dtype_is_float(t);
}

bool dtype_is_4bit(DType t) { return t == DType::Int4 || t == DType::UInt4; }

DType dtype_storage(DType t) { return t == DType::Int4 ? DType::Int8 : t == DType::UInt4 ? DType::UInt8 : t; }

DType dtype_from_onnx(int32_t v) {
  switch (v) {
    case 1: case 2: case 3: case 4: case 5: case 6: case 7: case 9: case 10: case 11: case 12: case 13: case 16:
    case 8: case 21: case 22:
      return static_cast<DType>(v);
    case 14: case 15: unsupported("complex tensors are not supported");
    // Types of ONNX 1.14+ (IR 9-13) that lowbit does not store: named, so a model using them says what it needs.
    case 17: unsupported("float8e4m3fn tensors are not supported");
    case 18: unsupported("float8e4m3fnuz tensors are not supported");
    case 19: unsupported("float8e5m2 tensors are not supported");
    case 20: unsupported("float8e5m2fnuz tensors are not supported");
    case 23: unsupported("float4e2m1 tensors are not supported");
    case 24: unsupported("float8e8m0 tensors are not supported");
    case 25: unsupported("uint2 tensors are not supported");
    case 26: unsupported("int2 tensors are not supported");
    default: fail("unknown ONNX data type ", v);
  }
}

}  // namespace lowbit
