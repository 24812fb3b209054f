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

#include "neuropil/rnn.h"

namespace neuropil {
namespace rnn_detail {

// One time step t of the fused gate kernels (gates.inc). Rows of the step's
// cache blocks are contiguous (time-major cache): row n of gates is
// gates + n*CH, and so on. Forward fields, then backward ones.
template <typename T>
struct GateStep {
  CellKind kind;
  index_t H, G, GH, CH;
  index_t t;
  const std::int64_t* lengths;  // null: every step valid
  T* gates;                     // [N, CH] of step t
  const T* h_prev;              // state entering step t: row n at h_prev + n*h_stride
  index_t h_stride;
  T* c_prev;                    // LSTM [N, H]
  T* tanh_c;                    // LSTM [N, H]
  // forward
  const T* bi;      // [GH] b_ih (+ b_hh except for the GRU)
  const T* bh;      // [GH] GRU: b_hh
  const T* hw;      // GRU: [N, GH] W_hh h_{t-1}
  T* y;             // row n at y + n*y_stride (columns [0, H))
  index_t y_stride;
  T* h_next;        // state after step t: row n at h_next + n*h_next_stride
  index_t h_next_stride;
  T* c_next;        // LSTM [N, H]
  // backward
  const T* dy;      // row n at dy + n*dy_stride, or null
  index_t dy_stride;
  T* dg;            // [N, GH]
  T* dgh;           // [N, GH] (GRU; == dg otherwise)
  T* dh;            // [N, H] carry
  T* dc;            // LSTM [N, H] carry
};

using gate_fn_f32 = void (*)(const GateStep<float>&, index_t n, index_t j0, index_t j1);
using gate_fn_f64 = void (*)(const GateStep<double>&, index_t n, index_t j0, index_t j1);

// Portable gate kernels (gates_generic.cpp).
void gate_forward_generic(const GateStep<float>& s, index_t n, index_t j0, index_t j1);
void gate_forward_generic(const GateStep<double>& s, index_t n, index_t j0, index_t j1);
void gate_backward_generic(const GateStep<float>& s, index_t n, index_t j0, index_t j1);
void gate_backward_generic(const GateStep<double>& s, index_t n, index_t j0, index_t j1);
#ifdef NEUROPIL_HAVE_AVX2
// AVX2 twins (gates_avx2.cpp, float only): call only when the active ISA is AVX2.
void gate_forward_avx2(const GateStep<float>& s, index_t n, index_t j0, index_t j1);
void gate_backward_avx2(const GateStep<float>& s, index_t n, index_t j0, index_t j1);
#endif

constexpr std::int64_t kPanel = 16;

#ifdef NEUROPIL_HAVE_AVX2
// Call only when the active ISA is AVX2 (CPU checked): built with -mavx2 -mfma.
void recurrent_matmul_avx2(const float* a, std::int64_t lda, std::int64_t M, std::int64_t K,
                           const float* bp, std::int64_t Ncols, std::int64_t p0,
                           std::int64_t p1, float* c, std::int64_t ldc, bool accumulate);
#endif

}  // namespace rnn_detail
}  // namespace neuropil
