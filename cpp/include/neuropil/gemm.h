// General matrix multiply, BLAS semantics, row-major storage.
//
//   C[M, N] = alpha * op(A)[M, K] @ op(B)[K, N] + beta * C[M, N]
//
// Layout: row-major with leading dimensions (row strides, in elements):
//   A is [M, K] (lda >= K) or, with ta == Trans::Yes, [K, M] (lda >= M);
//   B is [K, N] (ldb >= N) or, with tb == Trans::Yes, [N, K] (ldb >= K);
//   C is [M, N] (ldc >= N).
// Edge behaviour:
//   - beta == 0: C is write-only; its old contents (NaN included) are never read.
//   - K == 0 or alpha == 0: C = beta * C (A and B are not read).
//   - M == 0 or N == 0: nothing happens.
//   - C must not overlap A or B (the bindings check this).
// Determinism: every C element is computed by one thread with the same
// sequence of operations whatever the thread count (K is never split), so
// results are bitwise identical for any number of threads.
// Runs with up to get_num_threads() threads; small products run serially.
#pragma once
#include "neuropil/common.h"

namespace neuropil {

void gemm(Trans ta, Trans tb, index_t M, index_t N, index_t K, float alpha,
          const float* A, index_t lda, const float* B, index_t ldb, float beta,
          float* C, index_t ldc) noexcept;
void gemm(Trans ta, Trans tb, index_t M, index_t N, index_t K, double alpha,
          const double* A, index_t lda, const double* B, index_t ldb, double beta,
          double* C, index_t ldc) noexcept;

// Reference twin: the plain triple loop (single thread, accumulates in T in
// k order). Always compiled; tests compare the fast paths against it.
void gemm_reference(Trans ta, Trans tb, index_t M, index_t N, index_t K, float alpha,
                    const float* A, index_t lda, const float* B, index_t ldb, float beta,
                    float* C, index_t ldc) noexcept;
void gemm_reference(Trans ta, Trans tb, index_t M, index_t N, index_t K, double alpha,
                    const double* A, index_t lda, const double* B, index_t ldb, double beta,
                    double* C, index_t ldc) noexcept;

// The register tile and cache blocks gemm uses for float (4) or double (8)
// under the active ISA: chosen once from the detected L1/L2/L3 sizes.
void gemm_blocking(int dtype_bytes, int* mr, int* nr, index_t* mc, index_t* kc, index_t* nc);

// Peak probe for benchmarks: runs an FMA-bound loop for about `seconds` on
// `threads` threads and returns the float32 GFLOP/s reached (0 when the
// active ISA has no FMA probe).
double fma_peak_gflops(double seconds, int threads) noexcept;

}  // namespace neuropil
