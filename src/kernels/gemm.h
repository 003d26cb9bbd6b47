// Matrix multiplication kernels: float32 through BLAS, integer with int32 accumulation (reference loops).
#pragma once
#include <cstdint>

namespace lowbit {

// C[M,N] = alpha * op(A) * op(B) + beta * C, row-major, lda/ldb/ldc leading dimensions. Calls cblas_sgemm.
void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
           const float* B, int64_t ldb, float beta, float* C, int64_t ldc);
void dgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, double alpha, const double* A, int64_t lda,
           const double* B, int64_t ldb, double beta, double* C, int64_t ldc);

// C[M,N] = sum_k (A[m,k] - za) * (B[k,n] - zb[n or 0]), int32 accumulation, row-major, no transposes.
// zb_per_col: zb has N entries (per output column) when true, else one.
template <typename TA, typename TB>
void gemm_int32(int64_t M, int64_t N, int64_t K, const TA* A, int32_t za, const TB* B, const int32_t* zb,
                bool zb_per_col, int32_t* C);

}  // namespace lowbit
