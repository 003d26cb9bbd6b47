// Where tensor storage comes from. Large blocks (64 KiB and up) are kept when their tensor dies and handed out
// again for the next request of the same rounded size: a network run repeatedly allocates the same activation
// sizes, so after the first run it takes memory from this cache instead of the OS (no mmap, no page faults, no
// zeroing by the kernel). The cache holds at most storage_cache_limit() bytes; blocks beyond it are freed.
#pragma once
#include <cstddef>
#include <cstdint>

namespace lowbit {

void* storage_allocate(size_t bytes);
void storage_release(void* p, size_t bytes);

// Default 1 GiB, or LOWBIT_STORAGE_CACHE (bytes, K/M/G suffix; 0 turns caching off).
int64_t storage_cache_limit();
void set_storage_cache_limit(int64_t bytes);  // < 0 restores the default
// Bytes now held in the cache (not in use by any tensor), and frees them all.
int64_t storage_cached_bytes();
void storage_cache_clear();

}  // namespace lowbit
