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

// Pack once, multiply many: products that share their right operand op(B)
// [K, N] (an RNN's recurrent weight, used at every time step) pack it once in
// gemm's own panel layout and reuse it:
//   GemmPackedB l = gemm_pack_b_layout(sizeof(float), K, N);
//   std::vector<float> buf(l.size);           // caller-owned, reusable
//   gemm_pack_b(l, tb, B, ldb, buf.data());
//   gemm_prepacked_b(l, ta, M, alpha, A, lda, buf.data(), beta, C, ldc, threads);
// computes C[M, N] = alpha * op(A)[M, K] @ op(B) + beta * C with the same
// guarantees as gemm() (beta == 0 never reads C; bitwise identical for any
// thread count). The layout records the kernel family active when it was made,
// and the product uses that family, so a later set_isa() cannot mismatch them.
// max_threads bounds the threads used (1 = the calling thread only).
struct GemmPackedB {
  index_t K = 0, N = 0, kc = 0;
  int isa = 0, elem = 0;
  index_t size = 0;  // elements of the packed buffer
};
GemmPackedB gemm_pack_b_layout(int dtype_bytes, index_t K, index_t N) noexcept;
void gemm_pack_b(const GemmPackedB& layout, Trans tb, const float* B, index_t ldb,
                 float* packed) noexcept;
void gemm_pack_b(const GemmPackedB& layout, Trans tb, const double* B, index_t ldb,
                 double* packed) noexcept;
void gemm_prepacked_b(const GemmPackedB& layout, Trans ta, index_t M, float alpha,
                      const float* A, index_t lda, const float* packed, float beta, float* C,
                      index_t ldc, int max_threads) noexcept;
void gemm_prepacked_b(const GemmPackedB& layout, Trans ta, index_t M, double alpha,
                      const double* A, index_t lda, const double* packed, double beta, double* C,
                      index_t ldc, int max_threads) noexcept;

// The register tile and cache blocks gemm uses for float (4) or double (8)
// under the active ISA: chosen once from the detected L1/L2/L3 sizes.
void gemm_blocking(int dtype_bytes, int* mr, int* nr, index_t* mc, index_t* kc, index_t* nc);

// Peak probe for benchmarks: runs an FMA-bound loop for about `seconds` on
// `threads` threads and returns the float32 GFLOP/s reached (0 when the
// active ISA has no FMA probe).
double fma_peak_gflops(double seconds, int threads) noexcept;

}  // namespace neuropil
