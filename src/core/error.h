// lowbit::Error: the one exception type the library throws for bad input; carries file/node context.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace lowbit {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& msg) : std::runtime_error(msg) {}
};

namespace detail {
inline void append(std::ostringstream&) {}
template <typename T, typename... Rest>
void append(std::ostringstream& os, const T& v, const Rest&... rest) {
  os << v;
  append(os, rest...);
}
}  // namespace detail

// Builds a message from pieces: fail("node '", name, "': bad axis ", axis).
template <typename... Args>
[[noreturn]] void fail(const Args&... args) {
  std::ostringstream os;
  detail::append(os, args...);
  throw Error(os.str());
}

template <typename... Args>
void check(bool cond, const Args&... args) {
  if (!cond) fail(args...);
}

}  // namespace lowbit

namespace lowbit {
// Thrown for valid ONNX that lowbit does not implement (an attribute combination, a training mode, a dtype).
class Unsupported : public Error {
 public:
  explicit Unsupported(const std::string& msg) : Error(msg) {}
};
template <typename... Args>
[[noreturn]] void unsupported(const Args&... args) {
  std::ostringstream os;
  detail::append(os, args...);
  throw Unsupported(os.str());
}
}  // namespace lowbit
