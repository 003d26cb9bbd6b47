// The memory budget (see checked.h).
#include "core/checked.h"

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace lowbit {

namespace {

std::atomic<int64_t> g_budget{0};

int64_t physical_memory() {
  long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
  if (pages <= 0 || page <= 0) return int64_t(1) << 40;
  return (int64_t)pages * (int64_t)page;
}

int64_t default_budget() {
  const char* env = std::getenv("LOWBIT_MEMORY_LIMIT");
  if (!env || !*env) return physical_memory();
  return parse_byte_size("LOWBIT_MEMORY_LIMIT", env, false);
}

}  // namespace

int64_t parse_byte_size(const char* what, const char* text, bool allow_zero) {
  char* end = nullptr;
  double v = std::strtod(text, &end);
  double mult = 1;
  if (end && *end) {
    switch (*end) {
      case 'k': case 'K': mult = 1024.0; break;
      case 'm': case 'M': mult = 1024.0 * 1024; break;
      case 'g': case 'G': mult = 1024.0 * 1024 * 1024; break;
      case 't': case 'T': mult = 1024.0 * 1024 * 1024 * 1024; break;
      default: mult = -1;
    }
  }
  check(end != text && (allow_zero ? v >= 0 : v > 0) && mult > 0 && v * mult < 9.2e18, what, "='", text,
        "': expected a ", allow_zero ? "non-negative" : "positive",
        " number of bytes, optionally with a K, M, G or T suffix");
  return (int64_t)(v * mult);
}

int64_t memory_budget() {
  int64_t b = g_budget.load(std::memory_order_relaxed);
  if (b > 0) return b;
  b = default_budget();
  g_budget.store(b, std::memory_order_relaxed);
  return b;
}

void set_memory_budget(int64_t bytes) { g_budget.store(bytes > 0 ? bytes : 0, std::memory_order_relaxed); }

std::string human_bytes(double b) {
  const char* u[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  int i = 0;
  while (b >= 1024 && i < 6) b /= 1024, ++i;
  char buf[64];
  std::snprintf(buf, sizeof buf, i ? "%.1f %s" : "%.0f %s", b, u[i]);
  return buf;
}

namespace {
std::atomic<int64_t> g_loop_limit{0};
}  // namespace

int64_t loop_iteration_limit() {
  int64_t v = g_loop_limit.load();
  return v > 0 ? v : 1'000'000;
}
void set_loop_iteration_limit(int64_t n) { g_loop_limit.store(n > 0 ? n : 0); }

}  // namespace lowbit
