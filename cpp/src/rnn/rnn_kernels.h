// Fused gate kernels of the recurrent layers (internal to cpp/src/rnn): one
// source (gates.inc) built portable, AVX2 and AVX-512. The per-step recurrent product
// uses gemm's pack-once API (neuropil/gemm.h).
//
// Shared by the portable and the ISA translation units: declarations only
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
#ifdef NEUROPIL_HAVE_AVX512
// AVX-512 twins (gates_avx512.cpp, float only): call only when the active ISA is AVX-512.
void gate_forward_avx512(const GateStep<float>& s, index_t n, index_t j0, index_t j1);
void gate_backward_avx512(const GateStep<float>& s, index_t n, index_t j0, index_t j1);
#endif

}  // namespace rnn_detail
}  // namespace neuropil
