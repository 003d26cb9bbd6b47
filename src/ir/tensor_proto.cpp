// TensorProto <-> Tensor, including typed fields, raw data and external data files.
#include "ir/tensor_proto.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>

namespace lowbit {

namespace {

template <typename Src, typename T>
void copy_field(const Src& field, Tensor& t, const std::string& what) {
  check(field.size() == t.numel(), what, ": has ", field.size(), " values, shape ", shape_str(t.shape()),
        " needs ", t.numel());
  T* dst = reinterpret_cast<T*>(t.raw_mut());
  for (int i = 0; i < field.size(); ++i) {
    if constexpr (std::is_same_v<T, Float16> || std::is_same_v<T, BFloat16>) dst[i].bits = (uint16_t)field.Get(i);
    else dst[i] = static_cast<T>(field.Get(i));
  }
}

// A non-negative decimal integer of an external_data entry ("offset", "length"); anything else is an error naming
// the tensor, the data file and the bad value.
int64_t parse_extent(const std::string& value, const char* key, const std::string& what, const std::string& location) {
  bool digits = !value.empty() && value.size() <= 18 &&
                std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; });
  check(digits, what, ": external data '", key, "' of file '", location, "' is '", value,
        "'; expected a non-negative integer below 10^18");
  return std::stoll(value);
}

std::string read_external(const onnx::TensorProto& p, const std::string& what, const std::string& base_dir,
                          size_t expected) {
  std::string location, offset_text, length_text;
  for (auto& kv : p.external_data()) {
    if (kv.key() == "location") location = kv.value();
    else if (kv.key() == "offset") offset_text = kv.value();
    else if (kv.key() == "length") length_text = kv.value();
  }
  check(!location.empty(), what, ": external data without a location");
  int64_t offset = offset_text.empty() ? 0 : parse_extent(offset_text, "offset", what, location);
  int64_t length = length_text.empty() ? -1 : parse_extent(length_text, "length", what, location);
  namespace fs = std::filesystem;
  fs::path rel(location);
  check(!rel.is_absolute() && rel.lexically_normal().string().rfind("..", 0) != 0, what,
        ": external data location '", location, "' must be a path inside the model's folder");
  fs::path dir = fs::path(base_dir.empty() ? "." : base_dir);
  fs::path file = dir / rel;
  // Symlinks are followed before the check: the real file must lie inside the model's real folder, and be a
  // regular file (a FIFO or device would block or never end).
  std::error_code ec;
  check(fs::exists(file, ec), what, ": missing external-data file '", file.string(), "'");
  fs::path real_dir = fs::canonical(dir, ec);
  check(!ec, what, ": cannot resolve the model's folder '", dir.string(), "'");
  fs::path real_file = fs::canonical(file, ec);
  check(!ec, what, ": cannot resolve external-data file '", file.string(), "'");
  auto [d_end, f_it] = std::mismatch(real_dir.begin(), real_dir.end(), real_file.begin(), real_file.end());
  check(d_end == real_dir.end() && f_it != real_file.end(), what, ": external data location '", location,
        "' resolves to '", real_file.string(), "', outside the model's folder '", real_dir.string(), "'");
  check(fs::is_regular_file(real_file, ec), what, ": external data location '", location, "' is not a regular file");
  std::ifstream f(real_file, std::ios::binary);
  check(f.good(), what, ": missing external-data file '", file.string(), "'");
  f.seekg(0, std::ios::end);
  int64_t size = (int64_t)f.tellg();
  if (length < 0) length = (int64_t)expected;
  check(offset >= 0 && offset + length <= size, what, ": external data range [", offset, ", ", offset + length,
        ") lies beyond the end of '", file.string(), "' (", size, " bytes)");
  std::string data((size_t)length, '\0');
  f.seekg(offset);
  f.read(data.data(), length);
  check(f.good(), what, ": cannot read external data from '", file.string(), "'");
  return data;
}

// int4/uint4: two elements a byte in files, the first in the low nibble (ONNX IR 10); one a byte in memory.
void unpack_4bit(const uint8_t* packed, Tensor& t) {
  auto* dst = reinterpret_cast<uint8_t*>(t.raw_mut());
  const bool sign = t.dtype() == DType::Int4;
  for (int64_t i = 0; i < t.numel(); ++i) {
    uint8_t v = (uint8_t)((packed[i / 2] >> (4 * (i % 2))) & 15u);
    dst[i] = sign && v >= 8 ? (uint8_t)(v | 0xF0u) : v;
  }
}

Tensor allocate(DType dt, const Shape& shape, const std::string& what) {
  try {
    check_allocation(dt, shape);
  } catch (const Error& e) {
    fail(what, ": ", e.what());
  }
  return Tensor(dt, shape);
}

}  // namespace

Tensor tensor_from_proto(const onnx::TensorProto& p, const std::string& what, const std::string& base_dir) {
  if (p.has_segment()) unsupported(what, ": segmented tensors are not supported");
  DType dt;
  try {
    dt = dtype_from_onnx(p.data_type());
  } catch (const Unsupported& e) {
    unsupported(what, ": ", e.what());
  } catch (const Error& e) {
    fail(what, ": ", e.what());
  }
  Shape shape(p.dims().begin(), p.dims().end());
  int64_t numel = 1;
  for (auto d : shape) {
    check(d >= 0, what, ": negative dimension in ", shape_str(shape));
    check(d == 0 || numel <= std::numeric_limits<int64_t>::max() / d / 8, what, ": shape ", shape_str(shape),
          " is too large");
    numel *= d;
  }
  if (dt == DType::String) {  // the one place strings live: string_data (raw and external data are for numbers)
    check(p.data_location() != onnx::TensorProto::EXTERNAL && !p.has_raw_data(), what,
          ": a string tensor must keep its values in string_data, not in raw or external data");
    check(p.string_data_size() == numel, what, ": has ", p.string_data_size(), " strings, shape ", shape_str(shape),
          " needs ", numel);
    try {
      check_allocation(dt, shape, true);
    } catch (const Error& e) {
      fail(what, ": ", e.what());
    }
    return Tensor::from_strings(shape, {p.string_data().begin(), p.string_data().end()});
  }
  const bool four = dtype_is_4bit(dt);
  size_t nbytes = four ? (size_t)(numel / 2 + numel % 2) : (size_t)numel * dtype_size(dt);
  std::string external;
  const std::string* raw = nullptr;
  if (p.data_location() == onnx::TensorProto::EXTERNAL) {
    external = read_external(p, what, base_dir, nbytes);
    raw = &external;
  } else if (p.has_raw_data()) {
    raw = &p.raw_data();
  }
  if (raw) {
    check(raw->size() == nbytes, what, ": raw data has ", raw->size(), " bytes, shape ", shape_str(shape), " of ",
          dtype_name(dt), " needs ", nbytes);
    Tensor t = allocate(dt, shape, what);
    if (four) {
      unpack_4bit(reinterpret_cast<const uint8_t*>(raw->data()), t);
      return t;
    }
    if (nbytes) std::memcpy(t.raw_mut(), raw->data(), nbytes);
    if (dt == DType::Bool)
      for (int64_t i = 0; i < numel; ++i) t.data<bool>()[i] = reinterpret_cast<const uint8_t*>(raw->data())[i] != 0;
    return t;
  }
  // Typed fields: a tensor with no data at all is legal only when it has no elements. The count is checked before
  // anything is allocated, so a tiny file cannot declare a huge tensor.
  int64_t count = 0;
  switch (dt) {
    case DType::Float32: count = p.float_data_size(); break;
    case DType::Float64: count = p.double_data_size(); break;
    case DType::Int64: count = p.int64_data_size(); break;
    case DType::UInt32: case DType::UInt64: count = p.uint64_data_size(); break;
    default: count = p.int32_data_size(); break;
  }
  if (four) {  // int32_data holds the packed bytes, one a value
    check(count == (int64_t)nbytes, what, ": has ", count, " packed values, shape ", shape_str(shape), " of ",
          dtype_name(dt), " needs ", nbytes);
    std::vector<uint8_t> packed((size_t)count);
    for (int64_t i = 0; i < count; ++i) {
      int32_t v = p.int32_data((int)i);
      check(v >= 0 && v <= 255, what, ": packed ", dtype_name(dt), " value ", i, " is ", v, ", not a byte");
      packed[(size_t)i] = (uint8_t)v;
    }
    Tensor t = allocate(dt, shape, what);
    unpack_4bit(packed.data(), t);
    return t;
  }
  check(count == numel, what, ": has ", count, " values, shape ", shape_str(shape), " needs ", numel);
  Tensor t = allocate(dt, shape, what);
  switch (dt) {
    case DType::Float32: copy_field<decltype(p.float_data()), float>(p.float_data(), t, what); break;
    case DType::Float64: copy_field<decltype(p.double_data()), double>(p.double_data(), t, what); break;
    case DType::Int64: copy_field<decltype(p.int64_data()), int64_t>(p.int64_data(), t, what); break;
    case DType::UInt32: copy_field<decltype(p.uint64_data()), uint32_t>(p.uint64_data(), t, what); break;
    case DType::UInt64: copy_field<decltype(p.uint64_data()), uint64_t>(p.uint64_data(), t, what); break;
    case DType::Int32: copy_field<decltype(p.int32_data()), int32_t>(p.int32_data(), t, what); break;
    case DType::Int16: copy_field<decltype(p.int32_data()), int16_t>(p.int32_data(), t, what); break;
    case DType::UInt16: copy_field<decltype(p.int32_data()), uint16_t>(p.int32_data(), t, what); break;
    case DType::Int8: copy_field<decltype(p.int32_data()), int8_t>(p.int32_data(), t, what); break;
    case DType::UInt8: copy_field<decltype(p.int32_data()), uint8_t>(p.int32_data(), t, what); break;
    case DType::Bool: copy_field<decltype(p.int32_data()), bool>(p.int32_data(), t, what); break;
    case DType::Float16: copy_field<decltype(p.int32_data()), Float16>(p.int32_data(), t, what); break;
    case DType::BFloat16: copy_field<decltype(p.int32_data()), BFloat16>(p.int32_data(), t, what); break;
    default: fail(what, ": unsupported dtype");
  }
  return t;
}

void tensor_to_proto(const Tensor& t, const std::string& name, onnx::TensorProto* p) {
  p->Clear();
  if (!name.empty()) p->set_name(name);
  p->set_data_type((int32_t)t.dtype());
  for (auto d : t.shape()) p->add_dims(d);
  if (t.dtype() == DType::String) {
    for (auto& v : t.strings()) p->add_string_data(v);
    return;
  }
  if (dtype_is_4bit(t.dtype())) {
    const auto* src = reinterpret_cast<const uint8_t*>(t.raw());
    std::string packed((size_t)(t.numel() / 2 + t.numel() % 2), '\0');
    for (int64_t i = 0; i < t.numel(); ++i)
      packed[(size_t)(i / 2)] = (char)((uint8_t)packed[(size_t)(i / 2)] | (uint8_t)((src[i] & 15u) << (4 * (i % 2))));
    p->set_raw_data(std::move(packed));
    return;
  }
  p->set_raw_data(std::string(reinterpret_cast<const char*>(t.raw()), t.nbytes()));
}

}  // namespace lowbit
