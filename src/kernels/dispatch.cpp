#include "kernels/dispatch.h"

#include <atomic>
#include <cstdlib>
#include <cstring>

namespace lowbit {
namespace {
std::atomic<bool>& fast_flag() {
  static std::atomic<bool> on{[] {
    const char* e = std::getenv("LOWBIT_REFERENCE_KERNELS");
    return !(e && std::strcmp(e, "1") == 0);
  }()};
  return on;
}
}  // namespace

bool fast_kernels_enabled() { return fast_flag().load(std::memory_order_relaxed); }
void set_fast_kernels(bool on) { fast_flag().store(on, std::memory_order_relaxed); }

}  // namespace lowbit
