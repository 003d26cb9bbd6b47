// Tensor storage, shape helpers and dtype conversion.
#include "core/tensor.h"

#include "core/checked.h"
#include "core/string_cast.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <sstream>

namespace lowbit {

int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  // Hot: numel() is called in loops. No message is built unless the shape is bad.
  for (auto d : s) {
    if (d < 0) fail("negative dimension in shape ", shape_str(s));
    if (__builtin_mul_overflow(n, d, &n)) fail("shape ", shape_str(s), " has more elements than int64 can count");
  }
  return n;
}

std::string shape_str(const Shape& s) {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < s.size(); ++i) os << (i ? "," : "") << s[i];
  os << "]";
  return os.str();
}

std::vector<int64_t> shape_strides(const Shape& s) {
  std::vector<int64_t> st(s.size(), 1);
  for (int i = (int)s.size() - 2; i >= 0; --i) st[i] = st[i + 1] * s[i + 1];
  return st;
}

void check_allocation(DType dtype, const Shape& shape, bool strings) {
  int64_t n = shape_numel(shape);
  if (dtype == DType::String && !strings)
    unsupported("a new string tensor of shape ", shape_str(shape),
                " is needed here: lowbit computes string tensors only in Cast, CastLike and Equal (other ops may pass them "
                "through unchanged)");
  int64_t size = dtype == DType::String ? (int64_t)sizeof(std::string) : (int64_t)dtype_size(dtype);
  check(size > 0, "cannot allocate a tensor of dtype ", dtype_name(dtype));
  int64_t bytes;
  bool over = __builtin_mul_overflow(n, size, &bytes) || bytes > memory_budget();
  if (over)  // the message is built only on failure: this runs for every allocation
    fail("a ", dtype_name(dtype), " tensor of shape ", shape_str(shape), " needs ", human_bytes((double)n * (double)size),
         ", more than the memory budget of ", human_bytes((double)memory_budget()), " (LOWBIT_MEMORY_LIMIT)");
}

Tensor::Tensor(DType dtype, Shape shape) : dtype_(dtype), shape_(std::move(shape)) {
  check_allocation(dtype_, shape_);
  numel_ = shape_numel(shape_);
  buf_ = std::make_shared<TensorStorage>(nbytes());
  if (!buf_->empty()) std::memset(buf_->data(), 0, buf_->size());
}

Tensor Tensor::uninitialized(DType dtype, Shape shape, Layout layout) {
  Tensor t;
  t.dtype_ = dtype;
  t.shape_ = std::move(shape);
  t.layout_ = layout;
  check(layout == Layout::Plain || t.shape_.size() == 4, "a channels-last tensor must have rank 4, not ",
        t.shape_.size());
  check_allocation(t.dtype_, t.shape_);
  t.numel_ = shape_numel(t.shape_);
  t.buf_ = std::make_shared<TensorStorage>(t.nbytes());
  return t;
}

Tensor Tensor::from_strings(Shape shape, std::vector<std::string> values) {
  check_allocation(DType::String, shape, true);
  Tensor t;
  t.dtype_ = DType::String;
  t.shape_ = std::move(shape);
  t.numel_ = shape_numel(t.shape_);
  check((int64_t)values.size() == t.numel_, "Tensor::from_strings: ", values.size(), " values for shape ",
        shape_str(t.shape_));
  t.strings_ = std::make_shared<const std::vector<std::string>>(std::move(values));
  return t;
}

const std::vector<std::string>& Tensor::strings() const {
  if (dtype_ != DType::String) fail("tensor of dtype ", dtype_name(dtype_), " accessed as string");
  return *strings_;
}

void Tensor::fail_not_plain() { fail("internal error: a channels-last tensor was read as a plain one"); }

namespace {
// [A, B, C] -> [A, C, B] for elements of `es` bytes, in tiles so both sides stay in cache.
void transpose_last2(const std::byte* src, std::byte* dst, int64_t A, int64_t B, int64_t C, size_t es) {
  const int64_t T = 32;
#pragma omp parallel for collapse(2) schedule(static) if (A * B * C > 65536)
  for (int64_t a = 0; a < A; ++a)
    for (int64_t b0 = 0; b0 < B; b0 += T) {
      const std::byte* s = src + (size_t)(a * B * C) * es;
      std::byte* d = dst + (size_t)(a * B * C) * es;
      int64_t b1 = std::min(B, b0 + T);
      for (int64_t c0 = 0; c0 < C; c0 += T) {
        int64_t c1 = std::min(C, c0 + T);
        if (es == 4) {
          auto* s4 = reinterpret_cast<const uint32_t*>(s);
          auto* d4 = reinterpret_cast<uint32_t*>(d);
          for (int64_t b = b0; b < b1; ++b)
            for (int64_t c = c0; c < c1; ++c) d4[c * B + b] = s4[b * C + c];
        } else {
          for (int64_t b = b0; b < b1; ++b)
            for (int64_t c = c0; c < c1; ++c) std::memcpy(d + (size_t)(c * B + b) * es, s + (size_t)(b * C + c) * es, es);
        }
      }
    }
}
}  // namespace

Tensor Tensor::to_plain() const {
  if (layout_ == Layout::Plain) return *this;
  Tensor t = uninitialized(dtype_, shape_);
  if (numel())  // stored [N, H*W, C] -> [N, C, H*W]
    transpose_last2(static_cast<const std::byte*>(storage()), static_cast<std::byte*>(t.storage_mut()), shape_[0],
                    shape_[2] * shape_[3], shape_[1], dtype_size(dtype_));
  return t;
}

Tensor Tensor::to_channels_last() const {
  if (layout_ == Layout::ChannelsLast) return *this;
  Tensor t = uninitialized(dtype_, shape_, Layout::ChannelsLast);
  if (numel())  // [N, C, H*W] -> [N, H*W, C]
    transpose_last2(static_cast<const std::byte*>(storage()), static_cast<std::byte*>(t.storage_mut()), shape_[0],
                    shape_[1], shape_[2] * shape_[3], dtype_size(dtype_));
  return t;
}

Tensor Tensor::reshaped(Shape s) const {
  if (layout_ != Layout::Plain) fail_not_plain();
  check(shape_numel(s) == numel(), "cannot reshape ", shape_str(shape_), " to ", shape_str(s));
  Tensor t = *this;
  t.numel_ = shape_numel(s);
  t.shape_ = std::move(s);
  return t;
}

Tensor Tensor::clone() const {
  if (dtype_ == DType::String) return from_strings(shape_, *strings_);
  Tensor t(dtype_, shape_);
  t.layout_ = layout_;
  if (nbytes()) std::memcpy(t.storage_mut(), storage(), nbytes());
  return t;
}

Tensor Tensor::slice_rows(int64_t begin, int64_t end) const {
  check(rank() >= 1 && 0 <= begin && begin <= end && end <= dim(0), "slice_rows [", begin, ", ", end, ") of ",
        shape_str(shape_));
  Shape s = shape_;
  s[0] = end - begin;
  if (dtype_ == DType::String) {
    auto row = (size_t)(dim(0) ? numel() / dim(0) : 0);
    return from_strings(s, {strings_->begin() + (ptrdiff_t)(row * (size_t)begin),
                            strings_->begin() + (ptrdiff_t)(row * (size_t)end)});
  }
  Tensor t(dtype_, s);
  size_t row = dim(0) ? nbytes() / (size_t)dim(0) : 0;
  if (t.nbytes()) std::memcpy(t.raw_mut(), (const char*)raw() + row * (size_t)begin, t.nbytes());
  return t;
}

Tensor concat_rows(const std::vector<Tensor>& parts) {
  check(!parts.empty(), "concat_rows: nothing to join");
  Shape s = parts[0].shape();
  check(!s.empty(), "concat_rows: scalars have no rows");
  s[0] = 0;
  for (auto& p : parts) {
    check(p.dtype() == parts[0].dtype() && p.rank() == parts[0].rank() &&
              std::equal(p.shape().begin() + 1, p.shape().end(), parts[0].shape().begin() + 1),
          "concat_rows: ", shape_str(p.shape()), " does not match ", shape_str(parts[0].shape()));
    s[0] += p.dim(0);
  }
  if (parts[0].dtype() == DType::String) {
    std::vector<std::string> all;
    for (auto& p : parts) all.insert(all.end(), p.strings().begin(), p.strings().end());
    return Tensor::from_strings(s, std::move(all));
  }
  Tensor t(parts[0].dtype(), s);
  size_t off = 0;
  for (auto& p : parts) {
    if (p.nbytes()) std::memcpy((char*)t.raw_mut() + off, p.raw(), p.nbytes());
    off += p.nbytes();
  }
  return t;
}

namespace {
template <typename From, typename To>
To convert_one(From v) {
  if constexpr (std::is_same_v<From, To>) {
    return v;
  } else if constexpr (std::is_same_v<To, Float16> || std::is_same_v<To, BFloat16> || std::is_same_v<To, bool>) {
    return from_double<To>(to_double(v));
  } else if constexpr (std::is_floating_point_v<To>) {
    if constexpr (std::is_same_v<From, Float16> || std::is_same_v<From, BFloat16>) return (To)to_double(v);
    else return static_cast<To>(v);
  } else {  // integer destination
    if constexpr (std::is_integral_v<From>) {
      return static_cast<To>(v);
    } else {
      double d = to_double(v);
      if (std::isnan(d)) return To(0);
      // Saturate out-of-range values instead of invoking undefined behaviour.
      if (d >= (double)std::numeric_limits<To>::max()) return std::numeric_limits<To>::max();
      if (d <= (double)std::numeric_limits<To>::lowest()) return std::numeric_limits<To>::lowest();
      return static_cast<To>(d);  // truncation toward zero
    }
  }
}
}  // namespace

Tensor Tensor::retyped(DType to) const {
  check(to == dtype_ || dtype_storage(to) == dtype_storage(dtype_), "cannot view a ", dtype_name(dtype_),
        " tensor as ", dtype_name(to));
  Tensor t = *this;
  t.dtype_ = to;
  return t;
}

Tensor Tensor::cast(DType to) const {
  if (to == dtype_) return *this;
  if (to == DType::String) return from_strings(shape_, format_as_strings(*this));
  if (dtype_ == DType::String) return parse_strings(*this, to);
  if (dtype_is_4bit(dtype_)) return retyped(dtype_storage(dtype_)).cast(to);
  if (dtype_is_4bit(to)) {
    // The low 4 bits of the integer value (two's complement for int4).
    Tensor wide = cast(DType::Int64);
    Tensor out(to, shape_);
    const int64_t* src = wide.data<int64_t>();
    auto* dst = reinterpret_cast<uint8_t*>(out.raw_mut());
    for (int64_t i = 0; i < numel(); ++i) {
      auto low = (uint8_t)((uint64_t)src[i] & 15u);
      dst[i] = to == DType::Int4 && low >= 8 ? (uint8_t)(low | 0xF0u) : low;
    }
    return out;
  }
  Tensor out(to, shape_);
  int64_t n = numel();
  visit_dtype(dtype_, [&](auto* ftag) {
    using F = std::remove_pointer_t<decltype(ftag)>;
    const F* src = reinterpret_cast<const F*>(raw());
    visit_dtype(to, [&](auto* ttag) {
      using T = std::remove_pointer_t<decltype(ttag)>;
      T* dst = reinterpret_cast<T*>(out.raw_mut());
      for (int64_t i = 0; i < n; ++i) dst[i] = convert_one<F, T>(src[i]);
    });
  });
  return out;
}

std::vector<double> Tensor::to_f64() const {
  if (dtype_is_4bit(dtype_)) return retyped(dtype_storage(dtype_)).to_f64();
  std::vector<double> v((size_t)numel());
  visit_dtype(dtype_, [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    const T* p = reinterpret_cast<const T*>(raw());
    for (size_t i = 0; i < v.size(); ++i) v[i] = to_double(p[i]);
  });
  return v;
}

std::vector<int64_t> Tensor::to_i64() const {
  if (dtype_is_4bit(dtype_)) return retyped(dtype_storage(dtype_)).to_i64();
  std::vector<int64_t> v((size_t)numel());
  visit_dtype(dtype_, [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    const T* p = reinterpret_cast<const T*>(raw());
    for (size_t i = 0; i < v.size(); ++i) v[i] = convert_one<T, int64_t>(p[i]);
  });
  return v;
}

bool Tensor::bit_equal(const Tensor& o) const {
  if (dtype_ != o.dtype_ || shape_ != o.shape_) return false;
  if (dtype_ == DType::String) return *strings_ == *o.strings_;
  return nbytes() == 0 || std::memcmp(raw(), o.raw(), nbytes()) == 0;
}

}  // namespace lowbit
