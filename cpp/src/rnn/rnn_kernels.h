// Recurrent-product micro-kernels (internal to cpp/src/rnn).
//
// The per-step recurrent product multiplies by the same weight matrix T times
// (forward: h W_hh^T; backward: dG W_hh). neuropil::gemm packs its right
// operand on every call, which at these sizes ([32, 128] x [128, 512]) costs
// about half as much as the arithmetic; here the weight is packed once per
// sequence and the step product reads the packed panels directly.
//
// Packed right operand, op(B) [K, Ncols]: ceil(Ncols / 16) panels, panel p
// holding [K][16] floats (columns p*16 .. p*16+15, zero past Ncols).
//   c[M, Ncols] (row stride ldc) = (accumulate ? c : 0) + a[M, K] (row stride lda) x op(B)
// restricted to the panels [p0, p1) (threads split the panels). Every element
// of c is summed in k order by one thread: thread-count independent.
//
// Shared by the portable and the AVX2 translation units: declarations only
// (STYLE rule 4).
#pragma once
#include <cstdint>

namespace neuropil {
namespace rnn_detail {

constexpr std::int64_t kPanel = 16;

#ifdef NEUROPIL_HAVE_AVX2
// Call only when the active ISA is AVX2 (CPU checked): built with -mavx2 -mfma.
void recurrent_matmul_avx2(const float* a, std::int64_t lda, std::int64_t M, std::int64_t K,
                           const float* bp, std::int64_t Ncols, std::int64_t p0,
                           std::int64_t p1, float* c, std::int64_t ldc, bool accumulate);
#endif

}  // namespace rnn_detail
}  // namespace neuropil
