// Cast to and from string tensors (see string_cast.h for the formats).
#include "core/string_cast.h"

#include <charconv>
#include <clocale>
#include <cstdlib>
#include <locale.h>
#include <cmath>
#include <cstring>
#include <system_error>

namespace lowbit {

namespace {

// F is float or double: the shortest decimal form that reads back as the same F.
template <typename F>
std::string format_float(F v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v < 0 ? "-INF" : "INF";
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

template <typename I>
std::string format_int(I v) {
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_hex_digit(char c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

bool starts_with_nocase(const char* p, const char* end, const char* word) {
  size_t n = std::strlen(word);
  if ((size_t)(end - p) < n) return false;
  for (size_t i = 0; i < n; ++i)
    if ((char)(p[i] | 0x20) != word[i]) return false;
  return true;
}

[[noreturn]] void bad_element(size_t i, const std::string& s, DType to, const char* why) {
  fail("cannot cast string element ", i, " ('", s, "') to ", dtype_name(to), ": ", why);
}

// The start that strtod and strtoll share: white space, then an optional sign (true for '-'), both skipped.
bool skip_space_and_sign(const char*& p, const char* end) {
  while (p < end && is_space(*p)) ++p;
  bool neg = p < end && *p == '-';
  if (p < end && (*p == '-' || *p == '+')) ++p;
  return neg;
}

// What strtof / strtod give for a number from_chars finds out of range (it leaves the value unset): +-HUGE_VAL on
// overflow, 0 on underflow; in the "C" locale, so the caller's locale cannot change the decimal point.
template <typename F>
F strto_c(const char* p, const char* end) {
  static const locale_t c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0);
  std::string text(p, end);
  if constexpr (std::is_same_v<F, float>) return strtof_l(text.c_str(), nullptr, c_locale);
  else return strtod_l(text.c_str(), nullptr, c_locale);
}

// Like strtof / strtod: white space, an optional sign, then inf/infinity/nan, a hex float after 0x, or a decimal one.
template <typename F>
F parse_float(size_t i, const std::string& s, DType to) {
  const char* p = s.data();
  const char* end = p + s.size();
  const bool neg = skip_space_and_sign(p, end);
  F v = 0;
  if (starts_with_nocase(p, end, "inf")) {
    v = std::numeric_limits<F>::infinity();
  } else if (starts_with_nocase(p, end, "nan")) {
    v = std::numeric_limits<F>::quiet_NaN();
  } else if (end - p >= 3 && p[0] == '0' && (p[1] | 0x20) == 'x' && (is_hex_digit(p[2]) || p[2] == '.')) {
    auto r = std::from_chars(p + 2, end, v, std::chars_format::hex);
    if (r.ec == std::errc::result_out_of_range) v = strto_c<F>(p, end);
    else if (r.ec != std::errc()) v = 0;  // "0x." alone: strtod reads the leading 0
  } else {
    if (p == end || !(is_digit(*p) || *p == '.')) bad_element(i, s, to, "not a number");
    auto r = std::from_chars(p, end, v, std::chars_format::general);
    if (r.ec == std::errc::result_out_of_range) v = strto_c<F>(p, end);
    else if (r.ec != std::errc()) bad_element(i, s, to, "not a number");
  }
  return neg ? -v : v;
}

// Like strtoll / strtoull in base 10: white space, an optional sign, the digits up to the first other character.
template <typename I>
I parse_int(size_t i, const std::string& s, DType to) {
  const char* p = s.data();
  const char* end = p + s.size();
  const bool neg = skip_space_and_sign(p, end);
  if (p == end || !is_digit(*p)) bad_element(i, s, to, "not an integer");
  uint64_t mag = 0;
  auto r = std::from_chars(p, end, mag);
  if (r.ec != std::errc()) bad_element(i, s, to, "the value is out of range");
  if constexpr (std::is_unsigned_v<I>) {
    return neg ? (I)(0 - mag) : (I)mag;  // strtoull negates in the unsigned type
  } else {
    if (mag > (uint64_t)std::numeric_limits<int64_t>::max() + (neg ? 1u : 0u))
      bad_element(i, s, to, "the value is out of the range of int64");
    return neg ? (I)(0 - mag) : (I)mag;
  }
}

}  // namespace

std::vector<std::string> format_as_strings(const Tensor& t) {
  if (dtype_is_4bit(t.dtype())) return format_as_strings(t.retyped(dtype_storage(t.dtype())));
  std::vector<std::string> out((size_t)t.numel());
  visit_dtype(t.dtype(), [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    const T* p = t.data<T>();
    for (size_t i = 0; i < out.size(); ++i) {
      if constexpr (std::is_same_v<T, bool>) out[i] = p[i] ? "1" : "0";
      else if constexpr (std::is_integral_v<T>) out[i] = format_int(p[i]);
      else if constexpr (std::is_same_v<T, double>) out[i] = format_float(p[i]);
      else out[i] = format_float((float)to_double(p[i]));  // float16 / bfloat16 through their float32 value
    }
  });
  return out;
}

Tensor parse_strings(const Tensor& t, DType to) {
  const auto& s = t.strings();
  const size_t n = s.size();
  if (to == DType::Float64) {
    std::vector<double> v(n);
    for (size_t i = 0; i < n; ++i) v[i] = parse_float<double>(i, s[i], to);
    return Tensor::from_vector(t.shape(), v);
  }
  if (dtype_is_float(to)) {  // float16 / bfloat16 round the float32 value, as Cast from float32 does
    std::vector<float> v(n);
    for (size_t i = 0; i < n; ++i) v[i] = parse_float<float>(i, s[i], to);
    return Tensor::from_vector(t.shape(), v).cast(to);
  }
  if (to == DType::UInt64) {
    std::vector<uint64_t> v(n);
    for (size_t i = 0; i < n; ++i) v[i] = parse_int<uint64_t>(i, s[i], to);
    return Tensor::from_vector(t.shape(), v);
  }
  check(dtype_is_integer(to) || to == DType::Bool, "cannot cast a string tensor to ", dtype_name(to));
  std::vector<int64_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = parse_int<int64_t>(i, s[i], to);
  return Tensor::from_vector(t.shape(), v).cast(to);  // narrower integers wrap, bool is "non-zero"
}

}  // namespace lowbit
