// GEMM micro-kernel contract (internal to cpp/src/gemm).
//
// A micro-kernel computes one MR x NR tile of C from packed panels:
//   a: [kc][MR]  (MR values of op(A) per k, column of the tile's rows)
//   b: [kc][NR]  (NR values of op(B) per k; 32-byte aligned)
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

// Register tile and cache blocking for one element type.
struct Blocking {
  int mr, nr;            // register tile
  std::int64_t mc, kc, nc;  // cache blocks (mc % mr == 0, nc % nr == 0)
};

struct KernelTable {
  ukr_f32 sgemm;
  Blocking s;
  ukr_f64 dgemm;
  Blocking d;
};

// Largest register tile any table may use (edge tiles go through a buffer).
constexpr int kMaxMR = 8;
constexpr int kMaxNR = 16;

KernelTable generic_kernels();
#ifdef NEUROPIL_HAVE_AVX2
// Call only after cpu_info() confirmed AVX2 and FMA: this whole function's
// translation unit is compiled with -mavx2 -mfma.
KernelTable avx2_kernels();
// FMA throughput probe (benchmarks print the machine's peak): returns flops done.
double fma_loop_avx2(std::int64_t iters);
#endif

}  // namespace gemm_detail
}  // namespace neuropil
