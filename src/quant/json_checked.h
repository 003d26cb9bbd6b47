// Reading numbers from untrusted JSON (configs, encodings) without undefined behaviour: nlohmann's get<int>() on
// 1e30 or get<float>() on 1e300 converts out of range, which is undefined. json_fits<T> says whether get<T>() is
// exact-or-rounded and defined: integers must be JSON integers within T's range, floats numbers within T's range.
#pragma once
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#include <nlohmann/json.hpp>

namespace lowbit::quant {

template <typename T>
struct is_std_vector : std::false_type {};
template <typename E>
struct is_std_vector<std::vector<E>> : std::true_type {};

template <typename T>
bool json_fits(const nlohmann::json& v) {
  if constexpr (is_std_vector<T>::value) {
    if (!v.is_array()) return false;
    for (auto& e : v)
      if (!json_fits<typename T::value_type>(e)) return false;
    return true;
  } else if constexpr (std::is_same_v<T, bool>) {
    return v.is_boolean();
  } else if constexpr (std::is_integral_v<T>) {
    if (!v.is_number_integer()) return false;
    if (v.is_number_unsigned()) return v.get<uint64_t>() <= (uint64_t)std::numeric_limits<T>::max();
    int64_t i = v.get<int64_t>();
    return i >= (int64_t)std::numeric_limits<T>::lowest() && (std::is_unsigned_v<T> ? i >= 0 : true) &&
           (uint64_t)std::max<int64_t>(i, 0) <= (uint64_t)std::numeric_limits<T>::max();
  } else if constexpr (std::is_floating_point_v<T>) {
    if (!v.is_number()) return false;
    if (!v.is_number_float()) return true;
    double d = v.get<double>();
    return std::isfinite(d) && std::fabs(d) <= (double)std::numeric_limits<T>::max();
  } else {
    return true;  // strings and other types: nlohmann reports a mismatch as a type error
  }
}

}  // namespace lowbit::quant
