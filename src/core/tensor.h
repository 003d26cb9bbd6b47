// Tensor: a dtype, a shape and a shared, immutable-by-convention byte buffer (row-major, dense). String tensors
// hold their elements in a shared, immutable vector of std::string instead (no byte buffer).
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "core/storage_pool.h"

namespace lowbit {

using Shape = std::vector<int64_t>;

// Allocator for tensor storage: memory from the storage cache (core/storage_pool.h), and new bytes left
// uninitialised (a plain std::vector would zero them), so kernels that write every element of their output skip a
// memset per tensor.
template <typename T>
struct DefaultInitAllocator : std::allocator<T> {
  using value_type = T;
  DefaultInitAllocator() = default;
  template <typename U>
  DefaultInitAllocator(const DefaultInitAllocator<U>&) noexcept {}
  template <typename U>
  struct rebind {
    using other = DefaultInitAllocator<U>;
  };
  T* allocate(size_t n) { return static_cast<T*>(storage_allocate(n * sizeof(T))); }
  void deallocate(T* p, size_t n) noexcept { storage_release(p, n * sizeof(T)); }
  template <typename U>
  void construct(U* p) noexcept(std::is_nothrow_default_constructible_v<U>) {
    ::new (static_cast<void*>(p)) U;
  }
  template <typename U, typename... Args>
  void construct(U* p, Args&&... args) {
    ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
  }
};
using TensorStorage = std::vector<std::byte, DefaultInitAllocator<std::byte>>;

// Number of elements; an Error for a negative dimension or a product beyond int64 (never wraps).
int64_t shape_numel(const Shape& s);
// Throws, naming the shape and size, unless a tensor of this dtype and shape fits the memory budget
// (core/checked.h). Every Tensor allocation goes through it; loaders call it before reading data. A string tensor
// counts sizeof(std::string) an element; Unsupported for DType::String unless `strings` is set (only
// Tensor::from_strings and the loaders make string tensors: a kernel that copies elements bytewise must not
// produce one).
void check_allocation(DType dtype, const Shape& shape, bool strings = false);
std::string shape_str(const Shape& s);
// Row-major strides (in elements) of a shape.
std::vector<int64_t> shape_strides(const Shape& s);

// How a tensor's elements are stored. Plain: row-major in its shape (everything outside the executor, every kernel
// by default). ChannelsLast (rank 4 only): a logical [N, C, H, W] tensor stored as [N, H, W, C], the layout oneDNN's
// convolutions work in; only kernels registered as layout-aware see one, and the executor turns it back into a
// plain tensor before any other kernel, hook or caller gets it.
enum class Layout : uint8_t { Plain, ChannelsLast };

class Tensor {
 public:
  Tensor() = default;
  // Allocates zero-initialised storage.
  Tensor(DType dtype, Shape shape);
  // Allocates storage left uninitialised: only for outputs a kernel writes completely.
  static Tensor uninitialized(DType dtype, Shape shape, Layout layout = Layout::Plain);

  template <typename T>
  static Tensor from_vector(Shape shape, const std::vector<T>& values) {
    Tensor t(dtype_of<T>(), std::move(shape));
    check((int64_t)values.size() == t.numel(), "Tensor::from_vector: ", values.size(), " values for shape ",
          shape_str(t.shape()));
    if constexpr (std::is_same_v<T, bool>) {
      for (size_t i = 0; i < values.size(); ++i) t.data<bool>()[i] = values[i];
    } else {
      std::copy(values.begin(), values.end(), t.data<T>());
    }
    return t;
  }
  template <typename T>
  static Tensor scalar(T v) { return from_vector<T>({}, {v}); }
  // A string tensor (the only way to make one: kernels cannot allocate string outputs, see check_allocation).
  static Tensor from_strings(Shape shape, std::vector<std::string> values);
  // The elements of a string tensor, row-major; an error for any other dtype.
  const std::vector<std::string>& strings() const;

  bool defined() const { return dtype_ != DType::Undefined; }
  DType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  int64_t dim(int i) const { return shape_.at(i < 0 ? i + rank() : i); }
  int rank() const { return (int)shape_.size(); }
  int64_t numel() const { return numel_; }  // kept with the shape: loops may call it per element
  size_t nbytes() const { return (size_t)numel() * dtype_size(dtype_); }

  Layout layout() const { return layout_; }
  // Element access assumes the plain layout and fails on any other (a kernel that was not written for it).
  const void* raw() const {
    if (layout_ != Layout::Plain) fail_not_plain();
    return buf_ ? buf_->data() : nullptr;
  }
  void* raw_mut() {
    if (layout_ != Layout::Plain) fail_not_plain();
    return buf_ ? buf_->data() : nullptr;
  }
  // Storage in whatever layout the tensor has: for layout-aware kernels.
  const void* storage() const { return buf_ ? buf_->data() : nullptr; }
  void* storage_mut() { return buf_ ? buf_->data() : nullptr; }
  // The same values in the plain layout (this tensor itself when it already is), or channels-last (rank 4 only).
  Tensor to_plain() const;
  Tensor to_channels_last() const;

  template <typename T>
  const T* data() const {
    check_type<T>();
    return reinterpret_cast<const T*>(raw());
  }
  template <typename T>
  T* data() {
    check_type<T>();
    return reinterpret_cast<T*>(raw_mut());
  }
  template <typename T>
  std::span<const T> span() const { return {data<T>(), (size_t)numel()}; }

  // Same buffer, new shape (numel must match; plain layout only).
  Tensor reshaped(Shape s) const;
  // Same buffer read as another dtype of the same storage: int4 <-> int8 and uint4 <-> uint8 only (the caller
  // guarantees the values fit when it views 8-bit codes as 4-bit ones).
  Tensor retyped(DType to) const;
  // Deep copy.
  Tensor clone() const;
  // Deep copy of rows [begin, end) along dim 0.
  Tensor slice_rows(int64_t begin, int64_t end) const;
  // Converts element-wise to another dtype (float->int truncates toward zero, as ONNX Cast; to int4/uint4 keeps the
  // low 4 bits of the integer, as ONNX Cast since opset 25 defines it). To and from strings: core/string_cast.h.
  Tensor cast(DType to) const;
  // Values as float64 / int64 (any numeric dtype), for attributes, shapes and comparisons.
  std::vector<double> to_f64() const;
  std::vector<int64_t> to_i64() const;
  // The storage, weakly: lets a cache tell whether a tensor it prepared from is still this buffer (while it lives,
  // no other tensor can have its address).
  std::weak_ptr<const TensorStorage> weak_buffer() const { return buf_; }
  // Bitwise equality of dtype, shape and bytes.
  bool bit_equal(const Tensor& o) const;

 private:
  template <typename T>
  void check_type() const {
    if (dtype_of<T>() != dtype_)
      fail("tensor of dtype ", dtype_name(dtype_), " accessed as ", dtype_name(dtype_of<T>()));
  }
  [[noreturn]] static void fail_not_plain();
  DType dtype_ = DType::Undefined;
  Layout layout_ = Layout::Plain;
  Shape shape_;
  int64_t numel_ = 1;  // shape_numel(shape_), set wherever shape_ is
  std::shared_ptr<TensorStorage> buf_;
  std::shared_ptr<const std::vector<std::string>> strings_;  // dtype String only
};

// Tensors of equal dtype and trailing dims joined along dim 0.
Tensor concat_rows(const std::vector<Tensor>& parts);

// Calls f with a typed null pointer for the tensor's dtype: visit_dtype(t, [&](auto* tag){ using T = ...; }).
template <typename F>
decltype(auto) visit_dtype(DType t, F&& f) {
  switch (t) {
    case DType::Float32: return f((float*)nullptr);
    case DType::Float64: return f((double*)nullptr);
    case DType::Int8: return f((int8_t*)nullptr);
    case DType::UInt8: return f((uint8_t*)nullptr);
    case DType::Int16: return f((int16_t*)nullptr);
    case DType::UInt16: return f((uint16_t*)nullptr);
    case DType::Int32: return f((int32_t*)nullptr);
    case DType::UInt32: return f((uint32_t*)nullptr);
    case DType::Int64: return f((int64_t*)nullptr);
    case DType::UInt64: return f((uint64_t*)nullptr);
    case DType::Bool: return f((bool*)nullptr);
    case DType::Float16: return f((Float16*)nullptr);
    case DType::BFloat16: return f((BFloat16*)nullptr);
    default: unsupported("unsupported dtype ", dtype_name(t));
  }
}

// Element conversion helpers usable for every storable type.
template <typename T>
inline double to_double(T v) {
  if constexpr (std::is_same_v<T, Float16>) return half_to_float(v.bits);
  else if constexpr (std::is_same_v<T, BFloat16>) return bfloat16_to_float(v.bits);
  else return static_cast<double>(v);
}
template <typename T>
inline T from_double(double v) {
  if constexpr (std::is_same_v<T, Float16>) return Float16{float_to_half((float)v)};
  else if constexpr (std::is_same_v<T, BFloat16>) return BFloat16{float_to_bfloat16((float)v)};
  else if constexpr (std::is_same_v<T, bool>) return v != 0.0;
  else return static_cast<T>(v);
}

}  // namespace lowbit
