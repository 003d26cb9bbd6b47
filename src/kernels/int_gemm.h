// Fast integer matrix multiplication for the integer engine and the ONNX integer ops: C[M,N] = A[M,K] B[K,N] over
// int16 operands (centred 8-bit codes, |v| <= 255, so every product and every pair sum is exact in int32) with
// int32 accumulation that wraps as two's complement, exactly as the reference loops in gemm.cpp / conv.cpp do. Integer
// sums do not depend on their order, so every kernel below gives the reference's bits on every CPU.
//
// Kernels, picked at run time for the CPU (or capped by LOWBIT_INT_ISA=scalar|avx2|avx512): AVX-512 with VNNI
// (vpdpwssd: 32 columns x 4 rows a step), AVX2 (vpmaddwd + vpaddd: 16 columns x 4 rows) and a plain loop. The packed
// operands pair the K dimension: element (k, n) of B sits next to (k + 1, n), so one multiply-add takes two k at once.
#pragma once
#include <cstdint>
#include <vector>

namespace lowbit {

enum class IntIsa { Scalar, Avx2, Avx512Vnni };

// The best kernel this CPU runs, capped by LOWBIT_INT_ISA (read once).
IntIsa int_gemm_isa();
const char* int_isa_name(IntIsa isa);
// Whether the CPU can run kernels of `isa` (tests sweep every one it can).
bool int_isa_supported(IntIsa isa);

constexpr int64_t kIntPanel = 32;  // columns of B per packed panel

// B packed in panels of kIntPanel columns: panel j holds, for each k pair p = k / 2, the kIntPanel columns' two
// values (k = 2p, 2p + 1) side by side. K is padded to even and N to whole panels with zeros.
struct PackedB {
  int64_t K = 0, N = 0, pairs = 0, panels = 0;
  std::vector<int16_t> data;
  int16_t* at(int64_t panel, int64_t pair) { return data.data() + (panel * pairs + pair) * kIntPanel * 2; }
  const int16_t* at(int64_t panel, int64_t pair) const { return data.data() + (panel * pairs + pair) * kIntPanel * 2; }
};
// A packed in rows of K padded to even (zeros), rows padded to a multiple of 4 (zeros).
struct PackedA {
  int64_t M = 0, K = 0, pairs = 0, rows = 0;
  std::vector<int16_t> data;
  int16_t* row(int64_t m) { return data.data() + m * pairs * 2; }
  const int16_t* row(int64_t m) const { return data.data() + m * pairs * 2; }
};
PackedA make_packed_a(int64_t M, int64_t K);  // zero-filled
PackedB make_packed_b(int64_t K, int64_t N);  // zero-filled
inline void set_b(PackedB& b, int64_t k, int64_t n, int16_t v) {
  b.at(n / kIntPanel, k / 2)[(n % kIntPanel) * 2 + (k % 2)] = v;
}

// Whether codes centred by these zero points fit int16 (the packed operands): true for every 8-bit zero point.
inline bool centred_codes_fit(int32_t za, const int32_t* zb, int64_t nzb) {
  auto ok = [](int32_t z) { return z >= -16384 && z <= 16384; };
  bool fit = ok(za);
  for (int64_t i = 0; i < nzb; ++i) fit = fit && ok(zb[i]);
  return fit;
}

// C[m * ldc + n] = sum_k A[m, k] B[k, n] for m < A.M, n < B.N (A.K == B.K), with the kernel of `isa`; threads over
// row blocks and panels.
void gemm_s16_packed(const PackedA& A, const PackedB& B, int32_t* C, int64_t ldc, IntIsa isa = int_gemm_isa());

}  // namespace lowbit
