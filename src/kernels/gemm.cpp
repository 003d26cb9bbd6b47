// BLAS-backed float GEMM and the reference integer GEMM.
#include "kernels/gemm.h"

#include <cblas.h>

#include <vector>

#include "kernels/dispatch.h"
#include "kernels/int_gemm.h"

namespace lowbit {

void sgemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
           const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  if (K == 0) {
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) C[i * ldc + j] = beta == 0.f ? 0.f : beta * C[i * ldc + j];
    return;
  }
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (int)M, (int)N, (int)K,
              alpha, A, (int)lda, B, (int)ldb, beta, C, (int)ldc);
}

void dgemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha, const double* A, int64_t lda,
           const double* B, int64_t ldb, double beta, double* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  if (K == 0) {
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) C[i * ldc + j] = beta == 0.0 ? 0.0 : beta * C[i * ldc + j];
    return;
  }
  cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (int)M, (int)N, (int)K,
              alpha, A, (int)lda, B, (int)ldb, beta, C, (int)ldc);
}

template <typename TA, typename TB>
void gemm_int32(int64_t M, int64_t N, int64_t K, const TA* A, int32_t za, const TB* B, const int32_t* zb,
                bool zb_per_col, int32_t* C) {
  // Fast path: both operands centred into int16 and packed for kernels/int_gemm.h (the same integer sums).
  if (fast_kernels_enabled() && M > 0 && N > 0 && centred_codes_fit(za, zb, zb_per_col ? N : 1)) {
    PackedA a = make_packed_a(M, K);
#pragma omp parallel for schedule(static) if (M * K > 65536)
    for (int64_t m = 0; m < M; ++m)
      for (int64_t k = 0; k < K; ++k) a.row(m)[k] = (int16_t)((int32_t)A[m * K + k] - za);
    PackedB b = make_packed_b(K, N);
#pragma omp parallel for schedule(static) if (K * N > 65536)
    for (int64_t k = 0; k < K; ++k)
      for (int64_t n = 0; n < N; ++n) set_b(b, k, n, (int16_t)((int32_t)B[k * N + n] - zb[zb_per_col ? n : 0]));
    gemm_s16_packed(a, b, C, N);
    return;
  }
#pragma omp parallel for schedule(static)
  for (int64_t m = 0; m < M; ++m) {
    int32_t* c = C + m * N;
    for (int64_t n = 0; n < N; ++n) c[n] = 0;
    for (int64_t k = 0; k < K; ++k) {
      int32_t a = (int32_t)A[m * K + k] - za;
      const TB* b = B + k * N;
      // int32 accumulation wraps (as ONNX Runtime's does) instead of overflowing: unsigned arithmetic, defined.
      for (int64_t n = 0; n < N; ++n)
        c[n] = (int32_t)((uint32_t)c[n] + (uint32_t)a * (uint32_t)((int32_t)b[n] - zb[zb_per_col ? n : 0]));
    }
  }
}

template void gemm_int32<uint8_t, uint8_t>(int64_t, int64_t, int64_t, const uint8_t*, int32_t, const uint8_t*,
                                           const int32_t*, bool, int32_t*);
template void gemm_int32<uint8_t, int8_t>(int64_t, int64_t, int64_t, const uint8_t*, int32_t, const int8_t*,
                                          const int32_t*, bool, int32_t*);
template void gemm_int32<int8_t, uint8_t>(int64_t, int64_t, int64_t, const int8_t*, int32_t, const uint8_t*,
                                          const int32_t*, bool, int32_t*);
template void gemm_int32<int8_t, int8_t>(int64_t, int64_t, int64_t, const int8_t*, int32_t, const int8_t*,
                                         const int32_t*, bool, int32_t*);

}  // namespace lowbit
