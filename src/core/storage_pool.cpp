// The storage cache: exact-size free lists (sizes rounded up to 4 KiB) under one mutex. Blocks are 64-byte
// aligned, so vector loads in the kernels never straddle a cache line at the start of a tensor.
#include "core/storage_pool.h"

#include <atomic>
#include <cstdlib>
#include <mutex>
#include <new>
#include <unordered_map>
#include <vector>

#include "core/checked.h"

namespace lowbit {

namespace {
constexpr size_t kMinPooled = 64 * 1024;
constexpr size_t kRound = 4096;
constexpr size_t kAlign = 64;

struct Cache {
  std::mutex mu;
  std::unordered_map<size_t, std::vector<void*>> free;
  int64_t bytes = 0;
};
Cache& cache() {
  static Cache* c = new Cache;  // never destroyed: tensors in static objects may die after it otherwise
  return *c;
}

std::atomic<int64_t> g_limit{-1};

int64_t default_limit() {
  const char* env = std::getenv("LOWBIT_STORAGE_CACHE");
#if defined(__SANITIZE_ADDRESS__)
  // Under AddressSanitizer every freed buffer goes back to the allocator, so a use after free is still caught.
  if (!env || !*env) return 0;
#endif
  if (!env || !*env) return (int64_t)1 << 30;
  return parse_byte_size("LOWBIT_STORAGE_CACHE", env, true);
}

size_t rounded(size_t bytes) { return (bytes + kRound - 1) / kRound * kRound; }
}  // namespace

int64_t storage_cache_limit() {
  int64_t l = g_limit.load(std::memory_order_relaxed);
  if (l >= 0) return l;
  l = default_limit();
  g_limit.store(l, std::memory_order_relaxed);
  return l;
}

void set_storage_cache_limit(int64_t bytes) {
  g_limit.store(bytes < 0 ? default_limit() : bytes, std::memory_order_relaxed);
  if (storage_cached_bytes() > storage_cache_limit()) storage_cache_clear();
}

void* storage_allocate(size_t bytes) {
  if (bytes < kMinPooled) return ::operator new(bytes);
  size_t r = rounded(bytes);
  {
    Cache& c = cache();
    std::lock_guard<std::mutex> lock(c.mu);
    auto it = c.free.find(r);
    if (it != c.free.end() && !it->second.empty()) {
      void* p = it->second.back();
      it->second.pop_back();
      c.bytes -= (int64_t)r;
      return p;
    }
  }
  void* p = std::aligned_alloc(kAlign, r);
  if (!p) throw std::bad_alloc();
  return p;
}

void storage_release(void* p, size_t bytes) {
  if (!p) return;
  if (bytes < kMinPooled) {
    ::operator delete(p);
    return;
  }
  size_t r = rounded(bytes);
  {
    Cache& c = cache();
    std::lock_guard<std::mutex> lock(c.mu);
    if (c.bytes + (int64_t)r <= storage_cache_limit()) {
      c.free[r].push_back(p);
      c.bytes += (int64_t)r;
      return;
    }
  }
  std::free(p);
}

int64_t storage_cached_bytes() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  return c.bytes;
}

void storage_cache_clear() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  for (auto& [_, v] : c.free)
    for (void* p : v) std::free(p);
  c.free.clear();
  c.bytes = 0;
}

}  // namespace lowbit
