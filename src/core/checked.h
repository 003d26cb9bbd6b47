// Overflow-checked int64 arithmetic for shape computations: every kernel's output-shape arithmetic goes through
// these, so a hostile attribute or shape tensor gives an error instead of wrapping (and a too-small buffer).
#pragma once
#include <cstdint>
#include <string>

#include "core/error.h"

namespace lowbit {

// a * b, or an Error "<what...>: a * b overflows int64".
template <typename... What>
int64_t checked_mul(int64_t a, int64_t b, const What&... what) {
  int64_t r;
  if (__builtin_mul_overflow(a, b, &r)) fail(what..., ": ", a, " * ", b, " overflows int64");
  return r;
}

template <typename... What>
int64_t checked_add(int64_t a, int64_t b, const What&... what) {
  int64_t r;
  if (__builtin_add_overflow(a, b, &r)) fail(what..., ": ", a, " + ", b, " overflows int64");
  return r;
}

template <typename... What>
int64_t checked_sub(int64_t a, int64_t b, const What&... what) {
  int64_t r;
  if (__builtin_sub_overflow(a, b, &r)) fail(what..., ": ", a, " - ", b, " overflows int64");
  return r;
}

// The largest tensor, in bytes, lowbit allocates: the machine's physical memory unless set otherwise (the
// LOWBIT_MEMORY_LIMIT environment variable, in bytes or with a K/M/G/T suffix, or set_memory_budget). A tensor or
// initializer above it is an error that names its shape and size, raised before anything is allocated.
int64_t memory_budget();
void set_memory_budget(int64_t bytes);  // <= 0 restores the default
// "512M", "2G", "1048576" -> bytes; an Error naming `what` (an environment variable) for anything else.
int64_t parse_byte_size(const char* what, const char* text, bool allow_zero);
// "4.0 GiB"
std::string human_bytes(double bytes);

// Most iterations one Loop or Scan node may run (default 10^6: a few seconds for a trivial body). A model whose
// loop would run longer is refused with an error instead of running for hours. The fuzzers set a small limit.
int64_t loop_iteration_limit();
void set_loop_iteration_limit(int64_t n);  // <= 0 restores the default

}  // namespace lowbit
