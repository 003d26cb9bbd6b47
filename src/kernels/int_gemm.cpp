// Integer GEMM kernels (kernels/int_gemm.h): one 4 x kIntPanel tile of C at a time, per instruction set.
#include "kernels/int_gemm.h"

#include <immintrin.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "core/error.h"

namespace lowbit {

namespace {

constexpr int64_t kRows = 4;  // rows of A per tile

using TileFn = void (*)(const int16_t* const a[kRows], const int16_t* panel, int64_t pairs, int32_t* tile);

// Plain loops: the specification of the tile (products of int16 in int32, wrapping sums).
void tile_scalar(const int16_t* const a[kRows], const int16_t* panel, int64_t pairs, int32_t* tile) {
  for (int64_t r = 0; r < kRows; ++r)
    for (int64_t c = 0; c < kIntPanel; ++c) {
      uint32_t acc = 0;
      for (int64_t p = 0; p < pairs; ++p) {
        const int16_t* b = panel + p * kIntPanel * 2 + c * 2;
        acc += (uint32_t)((int32_t)a[r][2 * p] * b[0]) + (uint32_t)((int32_t)a[r][2 * p + 1] * b[1]);
      }
      tile[r * kIntPanel + c] = (int32_t)acc;
    }
}

inline int32_t pair_of(const int16_t* a, int64_t p) {
  int32_t v;
  std::memcpy(&v, a + 2 * p, sizeof v);  // (a[2p], a[2p + 1]) as one 32-bit lane, low half first
  return v;
}

__attribute__((target("avx2"))) void tile_avx2(const int16_t* const a[kRows], const int16_t* panel, int64_t pairs,
                                                int32_t* tile) {
  for (int h = 0; h < 2; ++h) {  // the panel's two halves of 16 columns
    __m256i c[kRows][2];
    for (auto& row : c) row[0] = row[1] = _mm256_setzero_si256();
    for (int64_t p = 0; p < pairs; ++p) {
      const int16_t* b = panel + p * kIntPanel * 2 + h * 32;
      __m256i b0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b));
      __m256i b1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 16));
      for (int r = 0; r < kRows; ++r) {
        __m256i av = _mm256_set1_epi32(pair_of(a[r], p));
        c[r][0] = _mm256_add_epi32(c[r][0], _mm256_madd_epi16(av, b0));
        c[r][1] = _mm256_add_epi32(c[r][1], _mm256_madd_epi16(av, b1));
      }
    }
    for (int r = 0; r < kRows; ++r) {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(tile + r * kIntPanel + h * 16), c[r][0]);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(tile + r * kIntPanel + h * 16 + 8), c[r][1]);
    }
  }
}

__attribute__((target("avx512f,avx512bw,avx512vnni"))) void tile_avx512(const int16_t* const a[kRows],
                                                                         const int16_t* panel, int64_t pairs,
                                                                         int32_t* tile) {
  __m512i c[kRows][2];
  for (auto& row : c) row[0] = row[1] = _mm512_setzero_si512();
  for (int64_t p = 0; p < pairs; ++p) {
    const int16_t* b = panel + p * kIntPanel * 2;
    __m512i b0 = _mm512_loadu_si512(b);
    __m512i b1 = _mm512_loadu_si512(b + 32);
    for (int r = 0; r < kRows; ++r) {
      __m512i av = _mm512_set1_epi32(pair_of(a[r], p));
      c[r][0] = _mm512_dpwssd_epi32(c[r][0], av, b0);  // non-saturating: wraps like the reference
      c[r][1] = _mm512_dpwssd_epi32(c[r][1], av, b1);
    }
  }
  for (int r = 0; r < kRows; ++r) {
    _mm512_storeu_si512(tile + r * kIntPanel, c[r][0]);
    _mm512_storeu_si512(tile + r * kIntPanel + 16, c[r][1]);
  }
}

IntIsa detect() {
  IntIsa best = IntIsa::Scalar;
  for (IntIsa i : {IntIsa::Avx2, IntIsa::Avx512Vnni})
    if (int_isa_supported(i)) best = i;
  if (const char* e = std::getenv("LOWBIT_INT_ISA")) {
    IntIsa cap = std::strcmp(e, "scalar") == 0 ? IntIsa::Scalar
                 : std::strcmp(e, "avx2") == 0 ? IntIsa::Avx2
                                               : IntIsa::Avx512Vnni;
    if ((int)cap < (int)best) best = cap;
  }
  return best;
}

}  // namespace

IntIsa int_gemm_isa() {
  static const IntIsa isa = detect();
  return isa;
}

const char* int_isa_name(IntIsa isa) {
  return isa == IntIsa::Avx512Vnni ? "avx512-vnni" : isa == IntIsa::Avx2 ? "avx2" : "scalar";
}

bool int_isa_supported(IntIsa isa) {
  switch (isa) {
    case IntIsa::Scalar: return true;
    case IntIsa::Avx2: return __builtin_cpu_supports("avx2");
    case IntIsa::Avx512Vnni:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vnni");
  }
  return false;
}

PackedA make_packed_a(int64_t M, int64_t K) {
  PackedA a;
  a.M = M;
  a.K = K;
  a.pairs = (K + 1) / 2;
  a.rows = (M + kRows - 1) / kRows * kRows;
  a.data.assign((size_t)(a.rows * a.pairs * 2), 0);
  return a;
}

PackedB make_packed_b(int64_t K, int64_t N) {
  PackedB b;
  b.K = K;
  b.N = N;
  b.pairs = (K + 1) / 2;
  b.panels = (N + kIntPanel - 1) / kIntPanel;
  b.data.assign((size_t)(b.panels * b.pairs * kIntPanel * 2), 0);
  return b;
}

void gemm_s16_packed(const PackedA& A, const PackedB& B, int32_t* C, int64_t ldc, IntIsa isa) {
  check(A.K == B.K, "gemm_s16_packed: A has K = ", A.K, ", B has K = ", B.K);
  check(int_isa_supported(isa), "gemm_s16_packed: this CPU cannot run ", int_isa_name(isa), " kernels");
  TileFn tile_fn = isa == IntIsa::Avx512Vnni ? tile_avx512 : isa == IntIsa::Avx2 ? tile_avx2 : tile_scalar;
  const int64_t blocks = A.rows / kRows, panels = B.panels, M = A.M, N = B.N;
  const bool threads = blocks * panels * A.pairs * kRows * kIntPanel > (1 << 16);
#pragma omp parallel for collapse(2) schedule(static) if (threads)
  for (int64_t rb = 0; rb < blocks; ++rb)
    for (int64_t j = 0; j < panels; ++j) {
      alignas(64) int32_t tile[kRows * kIntPanel];
      const int16_t* rows[kRows];
      for (int64_t r = 0; r < kRows; ++r) rows[r] = A.row(rb * kRows + r);
      tile_fn(rows, B.at(j, 0), A.pairs, tile);
      for (int64_t r = 0; r < kRows; ++r) {
        int64_t m = rb * kRows + r;
        if (m >= M) break;
        int64_t n0 = j * kIntPanel, cols = std::min<int64_t>(kIntPanel, N - n0);
        std::memcpy(C + m * ldc + n0, tile + r * kIntPanel, (size_t)cols * sizeof(int32_t));
      }
    }
}

}  // namespace lowbit
