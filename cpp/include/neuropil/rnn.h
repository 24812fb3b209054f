// Recurrent layers: whole-sequence forward and backward through time (BPTT)
// for one layer and one direction of an Elman RNN (tanh/ReLU), an LSTM and a
// GRU, with PyTorch's equations, gate order and weight layout, plus the
// embedding gather/scatter and the two reductions behind gradient clipping.
//
// Shapes (N batch, T time steps, I input features, H hidden units, G gates:
// RNN 1, LSTM 4, GRU 3):
//   x      [N, T, I] (batch_first) or [T, N, I]; C-contiguous
//   w_ih   [G*H, I], w_hh [G*H, H], b_ih [G*H], b_hh [G*H] (biases may be null)
//   h0, c0 [N, H]            initial states (h0 null = zeros; c0 LSTM only)
//   y      [N, T, ldy] / [T, N, ldy]; this direction writes columns [0, H) of
//          the pointer it is given (the caller offsets it by d*H for direction d)
//   h_n, c_n [N, H]          final states
// A "row" r(n, t) of a sequence array is n*T + t (batch_first) or t*N + n.
//
// Equations, per step (σ = logistic sigmoid, ⊙ elementwise, W_h* rows of w_hh):
//   RNN : h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh), act = tanh or relu
//         (relu's backward is a select, as relu_backward: dh where h_t > 0, else 0,
//         so a NaN gradient reaching a unit that was off does not spread)
//   LSTM: [i f g o] = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh  (row blocks of H)
//         i, f, o = σ(.), g = tanh(.)
//         c_t = f ⊙ c_{t-1} + i ⊙ g,   h_t = o ⊙ tanh(c_t)
//   GRU : r = σ(W_ir x + b_ir + W_hr h + b_hr),  z = σ(W_iz x + b_iz + W_hz h + b_hz)
//         n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))      (reset after the product)
//         h_t = (1 - z) ⊙ n + z ⊙ h_{t-1}
// reverse == true runs t = T-1 ... 0 (the backward half of a bidirectional
// layer); "previous" then means t+1.
//
// Variable lengths: lengths[n] in [0, T] (null = all T). A step with t >=
// lengths[n] is padding: the state passes through unchanged (h_t = h_{t-1},
// c_t = c_{t-1}), y there is 0, and it contributes no gradient to anything
// (dy there is ignored; a NaN given or computed there does not spread: a select,
// not a multiplication by 0). The final state is the state at the last valid step;
// in reverse the sequence starts at t = lengths[n]-1 from h0 (PyTorch's
// packed-sequence semantics).
//
// Algorithm: the input projection of every step is one GEMM
// ([N*T, I] x [I, G*H]); then per step one recurrent GEMM ([N, H] x [H, G*H])
// and one fused elementwise gate kernel (parallel over the batch when large).
// Backward runs the steps in reverse with one GEMM and one fused kernel per
// step, then forms the weight gradients as single GEMMs over all N*T rows:
//   [dW_ih | dW_hh | db] += dG^T [X | Hprev | 1]  (GRU: two GEMMs, dGx and dGh
//   differ),  dX = dGx W_ih.
//
// Cache (caller-allocated, filled by forward, read by backward). Its rows are
// time-major, c(n, t) = t*N + n, whatever the layout of x, so that the rows of
// one step are contiguous for the per-step products (batch-first rows of one
// step sit T rows apart: a power-of-two stride that thrashes the caches):
//   gates  [N*T, C*H]  RNN C=1: h_t;  LSTM C=4: i f g o (activated);
//                      GRU C=4: r z n and (W_hn h_{t-1} + b_hn)
//   xh     [N*T, I+H+1]  row c(n, t) = [x_t | h_{t-1} | 1]: the input, the state
//                      entering step t and a one, side by side, so that backward
//                      gets [dW_ih | dW_hh | db] from ONE GEMM dG^T [X | H | 1]
//   c_prev [N*T, H]    LSTM only: the cell state entering step t
//   tanh_c [N*T, H]    LSTM only: tanh(c_t)
// Backward scratch (caller-allocated): dg [N*T, G*H] gate gradients, and for
// the GRU dgh [N*T, G*H] (the hidden-side ones, which differ in the n block).
//
// Determinism: GEMMs are thread-count independent, gate kernels are
// elementwise, bias sums run per column in row order: results are bitwise
// identical for any number of threads. Call from one thread at a time per
// buffer set (kernels use the OpenMP pool internally; never call inside a
// parallel_for).
#pragma once
#include "neuropil/common.h"

namespace neuropil {

enum class CellKind : int { RnnTanh = 0, RnnRelu = 1, Lstm = 2, Gru = 3 };

// Gates per cell (G) and cached columns per step in units of H (C).
int cell_gates(CellKind kind) noexcept;
int cell_cache_width(CellKind kind) noexcept;

struct SeqDims {
  index_t N, T, I, H;
  bool batch_first;
  bool reverse;
};

template <typename T>
struct RecurrentWeights {
  const T* w_ih;  // [G*H, I]
  const T* w_hh;  // [G*H, H]
  const T* b_ih;  // [G*H] or null
  const T* b_hh;  // [G*H] or null
};

template <typename T>
struct RecurrentCache {
  T* gates;   // [N*T, C*H]
  T* xh;      // [N*T, I+H+1]
  T* c_prev;  // [N*T, H]  LSTM only, else null
  T* tanh_c;  // [N*T, H]  LSTM only, else null
};

// Forward over the whole sequence. x [rows, I]; y [rows, ldy] (columns
// [0, H) written, 0 at padded steps); h_n/c_n [N, H] written.
// lengths: null or N values in [0, T] (checked by the bindings).
void recurrent_forward(CellKind kind, const SeqDims& d, const float* x,
                       const RecurrentWeights<float>& w, const float* h0, const float* c0,
                       const std::int64_t* lengths, float* y, index_t ldy, float* h_n,
                       float* c_n, const RecurrentCache<float>& cache) noexcept;
void recurrent_forward(CellKind kind, const SeqDims& d, const double* x,
                       const RecurrentWeights<double>& w, const double* h0, const double* c0,
                       const std::int64_t* lengths, double* y, index_t ldy, double* h_n,
                       double* c_n, const RecurrentCache<double>& cache) noexcept;

// Backward through time, after recurrent_forward with the same arguments.
//   dy [rows, ldy] (columns [0, H) read; null = zero), dh_n / dc_n [N, H]
//   (null = zero): gradients of the loss w.r.t. y and the final states.
// Outputs: dh0 / dc0 [N, H] written (dc0 LSTM only); dx [rows, I] written,
// or accumulated into when dx_accumulate, or skipped when null; dw_ih,
// dw_hh, db_ih, db_hh are accumulated into (+=; biases skipped when null).
// dg / dgh: scratch as described above (dgh GRU only, else null).
void recurrent_backward(CellKind kind, const SeqDims& d, const float* x,
                        const RecurrentWeights<float>& w, const std::int64_t* lengths,
                        const RecurrentCache<float>& cache, const float* dy, index_t ldy,
                        const float* dh_n, const float* dc_n, float* dg, float* dgh,
                        float* dx, bool dx_accumulate, float* dh0, float* dc0, float* dw_ih,
                        float* dw_hh, float* db_ih, float* db_hh) noexcept;
void recurrent_backward(CellKind kind, const SeqDims& d, const double* x,
                        const RecurrentWeights<double>& w, const std::int64_t* lengths,
                        const RecurrentCache<double>& cache, const double* dy, index_t ldy,
                        const double* dh_n, const double* dc_n, double* dg, double* dgh,
                        double* dx, bool dx_accumulate, double* dh0, double* dc0,
                        double* dw_ih, double* dw_hh, double* db_ih, double* db_hh) noexcept;

// Embedding: weight [V, E], indices [M] (each in [0, V), checked by the
// bindings). Forward: out[m, :] = weight[indices[m], :].
// Backward: dweight[indices[m], :] += dout[m, :] for m in increasing order
// (threads split the E columns, so the order of additions is fixed).
void embedding_forward(const float* weight, const std::int64_t* indices, index_t M, index_t E,
                       float* out) noexcept;
void embedding_forward(const double* weight, const std::int64_t* indices, index_t M, index_t E,
                       double* out) noexcept;
void embedding_backward(const float* dout, const std::int64_t* indices, index_t M, index_t E,
                        float* dweight) noexcept;
void embedding_backward(const double* dout, const std::int64_t* indices, index_t M, index_t E,
                        double* dweight) noexcept;

// sum_i x[i]^2 accumulated in double over fixed blocks of 4096 elements,
// folded in block order (thread-count independent).
double sum_squares(const float* x, index_t n) noexcept;
double sum_squares(const double* x, index_t n) noexcept;
// x[i] *= alpha, in place.
void scale_inplace(float* x, index_t n, double alpha) noexcept;
void scale_inplace(double* x, index_t n, double alpha) noexcept;

}  // namespace neuropil
