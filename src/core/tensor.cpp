// Tensor storage, shape helpers and dtype conversion.
#include "core/tensor.h"

#include "core/checked.h"

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

void check_allocation(DType dtype, const Shape& shape) {
  int64_t n = shape_numel(shape);
  int64_t size = (int64_t)dtype_size(dtype);
  check(size > 0, "cannot allocate a tensor of dtype ", dtype_name(dtype));
  int64_t bytes;
  bool over = __builtin_mul_overflow(n, size, &bytes) || bytes > memory_budget();
  if (over)  // the message is built only on failure: this runs for every allocation
    fail("a ", dtype_name(dtype), " tensor of shape ", shape_str(shape), " needs ", human_bytes((double)n * (double)size),
         ", more than the memory budget of ", human_bytes((double)memory_budget()), " (LOWBIT_MEMORY_LIMIT)");
}

Tensor::Tensor(DType dtype, Shape shape) : dtype_(dtype), shape_(std::move(shape)) {
  check_allocation(dtype_, shape_);
  buf_ = std::make_shared<TensorStorage>(nbytes());
  if (!buf_->empty()) std::memset(buf_->data(), 0, buf_->size());
}

Tensor Tensor::uninitialized(DType dtype, Shape shape) {
  Tensor t;
  t.dtype_ = dtype;
  t.shape_ = std::move(shape);
  check_allocation(t.dtype_, t.shape_);
  t.buf_ = std::make_shared<TensorStorage>(t.nbytes());
  return t;
}

Tensor Tensor::reshaped(Shape s) const {
  check(shape_numel(s) == numel(), "cannot reshape ", shape_str(shape_), " to ", shape_str(s));
  Tensor t = *this;
  t.shape_ = std::move(s);
  return t;
}

Tensor Tensor::clone() const {
  Tensor t(dtype_, shape_);
  if (nbytes()) std::memcpy(t.raw_mut(), raw(), nbytes());
  return t;
}

Tensor Tensor::slice_rows(int64_t begin, int64_t end) const {
  check(rank() >= 1 && 0 <= begin && begin <= end && end <= dim(0), "slice_rows [", begin, ", ", end, ") of ",
        shape_str(shape_));
  Shape s = shape_;
  s[0] = end - begin;
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

Tensor Tensor::cast(DType to) const {
  if (to == dtype_) return *this;
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
  std::vector<double> v((size_t)numel());
  visit_dtype(dtype_, [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    const T* p = reinterpret_cast<const T*>(raw());
    for (size_t i = 0; i < v.size(); ++i) v[i] = to_double(p[i]);
  });
  return v;
}

std::vector<int64_t> Tensor::to_i64() const {
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
  return nbytes() == 0 || std::memcmp(raw(), o.raw(), nbytes()) == 0;
}

}  // namespace lowbit
