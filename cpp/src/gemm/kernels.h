// GEMM micro-kernel contract (internal to cpp/src/gemm).
//
// A micro-kernel computes one MR x NR tile of C from packed panels:
//   a: [kc][MR]  (MR values of op(A) per k, column of the tile's rows)
//   b: [kc][NR]  (NR values of op(B) per k; any alignment)
//   c: row-major tile, row stride ldc, all MR x NR entries valid.
//   c[i, j] = alpha * sum_k a[k][i] * b[k][j]  (+ beta * c[i, j] when beta != 0;
//   with beta == 0, c is write-only).
// kc >= 1. Accumulation runs in k order, so every tile's result depends only on
// its packed inputs, never on the thread that computes it.
//
// This header is shared by the portable and the ISA-specific translation
// units: it must stay declarations only (no inline code, see STYLE rule 4).
#pragma once
#include <cstdint>

namespace neuropil {
namespace gemm_detail {

using ukr_f32 = void (*)(std::int64_t kc, const float* a, const float* b, float* c,
                         std::int64_t ldc, float alpha, float beta);
using ukr_f64 = void (*)(std::int64_t kc, const double* a, const double* b, double* c,
                         std::int64_t ldc, double alpha, double beta);

// Same tile with A read in place (no packing): a(i, k) = a[i * rs_a + k * cs_a].
// Used when A's reuse is too low to repay packing (skinny products); a table
// may leave these null, and then every product is packed.
using ukr_ga_f32 = void (*)(std::int64_t kc, const float* a, std::int64_t rs_a, std::int64_t cs_a,
                            const float* b, float* c, std::int64_t ldc, float alpha, float beta);
using ukr_ga_f64 = void (*)(std::int64_t kc, const double* a, std::int64_t rs_a,
                            std::int64_t cs_a, const double* b, double* c, std::int64_t ldc,
                            double alpha, double beta);

// Same as ukr_ga_* but only the first n_valid columns of the tile (1 <= n_valid
// <= nr) are computed and stored; columns past n_valid of C are never read or
// written, so a partial column panel needs no detour through a buffer. b is
// still a full nr-wide packed panel (its padding columns are zero). With
// split_k a panel at most half full may sum even and odd k apart (faster, but
// rounded differently from a full panel's columns); without it every column
// rounds exactly as in a full panel.
using ukr_gan_f32 = void (*)(std::int64_t kc, const float* a, std::int64_t rs_a, std::int64_t cs_a,
                             const float* b, float* c, std::int64_t ldc, float alpha, float beta,
                             int n_valid, bool split_k);
using ukr_gan_f64 = void (*)(std::int64_t kc, const double* a, std::int64_t rs_a,
                             std::int64_t cs_a, const double* b, double* c, std::int64_t ldc,
                             double alpha, double beta, int n_valid, bool split_k);

// Few-row products with both operands read in place (no packing): rows
// [0, r + 1) of op(A), a(i, k) = a[i * rs_a + k * cs_a], times n_valid
// (<= nr) columns of B, row k at b + k * ldb with contiguous columns, stored
// at c[i * ldc + j], or with c_trans at c[j * ldc + i] (the product of a
// transposed problem, C^T = op(B)^T op(A)^T). Accumulates the whole K in
// registers, in k order.
using ukr_small_f32 = void (*)(std::int64_t kc, const float* a, std::int64_t rs_a,
                               std::int64_t cs_a, const float* b, std::int64_t ldb, float* c,
                               std::int64_t ldc, float alpha, float beta, int n_valid,
                               bool c_trans);
using ukr_small_f64 = void (*)(std::int64_t kc, const double* a, std::int64_t rs_a,
                               std::int64_t cs_a, const double* b, std::int64_t ldb, double* c,
                               std::int64_t ldc, double alpha, double beta, int n_valid,
                               bool c_trans);

// Register tile and cache blocking for one element type.
struct Blocking {
  int mr, nr;            // register tile
  std::int64_t mc, kc, nc;  // cache blocks (mc % mr == 0, nc % nr == 0)
};

// Packing of one panel (see gemm.cpp for the loop nest):
//   pack_a: rows [i0, i0 + mr_valid) of op(A), columns [p0, p0 + kc) -> dst[kc][mr],
//           rows past mr_valid zero. op(A)(i, p) = trans ? A[p*lda + i] : A[i*lda + p].
//   pack_b: columns [j0, j0 + nr_valid) of op(B), rows [p0, p0 + kc) -> dst[kc][nr],
//           columns past nr_valid zero. op(B)(p, j) = trans ? B[j*ldb + p] : B[p*ldb + j].
// dst needs no particular alignment; exactly kc * mr (kc * nr) elements are written.
template <typename T>
using pack_a_fn = void (*)(bool trans, const T* A, std::int64_t lda, std::int64_t i0,
                           std::int64_t mr_valid, std::int64_t p0, std::int64_t kc, T* dst);
template <typename T>
using pack_b_fn = void (*)(bool trans, const T* B, std::int64_t ldb, std::int64_t j0,
                           std::int64_t nr_valid, std::int64_t p0, std::int64_t kc, T* dst);

struct KernelTable {
  ukr_f32 sgemm;
  Blocking s;
  pack_a_fn<float> spack_a;
  pack_b_fn<float> spack_b;
  ukr_ga_f32 sgemm_ga;
  // Optional: in-place-A kernels computing only the first r + 1 rows of a tile
  // (sgemm_ga_rows[r]); all null or all set.
  ukr_ga_f32 sgemm_ga_rows[6];
  // Optional: the same for the first r + 1 rows and n_valid columns of a
  // tile (partial column panels); all null or all set, and only with rows.
  ukr_gan_f32 sgemm_ga_cols[6];
  // Optional: stores a full mr x nr float tile (row stride nr) transposed,
  // c[j * ldc + i] = tile[i][j] (+ beta * c[j * ldc + i] when beta != 0).
  void (*sstore_t)(const float* tile, float* c, std::int64_t ldc, float beta);
  ukr_f64 dgemm;
  Blocking d;
  pack_a_fn<double> dpack_a;
  pack_b_fn<double> dpack_b;
  ukr_ga_f64 dgemm_ga;
  ukr_ga_f64 dgemm_ga_rows[6];   // optional, as sgemm_ga_rows
  ukr_gan_f64 dgemm_ga_cols[6];  // optional, as sgemm_ga_cols
  // Products whose short side (M or N) is at most skinny_max run the skinny
  // path (only op(B) packed, A read in place), and up to
  // skinny_contiguous_max when the operand read in place runs along K.
  // Measured per kernel family (bench/compare.py gemm).
  std::int64_t skinny_max, skinny_contiguous_max;
  // Optional: few-row kernels (sgemm_small[r] for r + 1 rows; small_rows = 0
  // when absent), for products whose op(B) rows are contiguous (or the
  // transposed problem's) with at most small_rows rows, or small ones: at
  // most small_max rows (run as blocks of up to small_rows), K <= small_k
  // and M * N <= small_mn. An nr-wide column block of op(B) then stays in L1
  // for all the row blocks, and A and C in L2, unpacked.
  int small_rows;
  std::int64_t small_max, small_k, small_mn;
  ukr_small_f32 sgemm_small[12];
  ukr_small_f64 dgemm_small[12];
};

// Portable packing for any register tile (defined in kernels_generic.cpp);
// ISA tables may use these for the cases they do not specialise.
void pack_a_generic_f32_mr6(bool, const float*, std::int64_t, std::int64_t, std::int64_t,
                            std::int64_t, std::int64_t, float*);
void pack_b_generic_f32_nr16(bool, const float*, std::int64_t, std::int64_t, std::int64_t,
                             std::int64_t, std::int64_t, float*);
void pack_b_generic_f32_nr32(bool, const float*, std::int64_t, std::int64_t, std::int64_t,
                             std::int64_t, std::int64_t, float*);
void pack_a_generic_f64_mr6(bool, const double*, std::int64_t, std::int64_t, std::int64_t,
                            std::int64_t, std::int64_t, double*);
void pack_b_generic_f64_nr8(bool, const double*, std::int64_t, std::int64_t, std::int64_t,
                            std::int64_t, std::int64_t, double*);

// Largest register tile any table may use (edge tiles go through a buffer).
constexpr int kMaxMR = 8;
constexpr int kMaxNR = 32;

KernelTable generic_kernels();
#ifdef NEUROPIL_HAVE_AVX2
// Call only after cpu_info() confirmed AVX2 and FMA: this whole function's
// translation unit is compiled with -mavx2 -mfma.
KernelTable avx2_kernels();
// FMA throughput probe (benchmarks print the machine's peak): returns flops done.
double fma_loop_avx2(std::int64_t iters);
#endif
#ifdef NEUROPIL_HAVE_AVX512
// Call only after cpu_info() confirmed AVX-512F (its translation unit is built
// with -mavx512f). Float kernels are 6 x 32, double ones 6 x 16.
KernelTable avx512_kernels();
double fma_loop_avx512(std::int64_t iters);
#endif

}  // namespace gemm_detail
}  // namespace neuropil
