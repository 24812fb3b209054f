// Fully connected layer: GEMM plus its epilogues, one call per direction.
//
// Weight layout as PyTorch's nn.Linear: w [OUT, IN]; x [N, IN]; y [N, OUT].
//
// linear_forward:  y[N, OUT] = act(x[N, IN] @ w[OUT, IN]^T + b[OUT])
//   one gemm (trans_b) writing y, then the bias(+activation) epilogue over y while it
//   is still in cache. b == nullptr: no bias. y must not overlap x, w or b.
//
// linear_backward (dy [N, OUT] is dL/dy of the PRE-activation output):
//   dw[OUT, IN] = beta_w * dw + dy^T @ x   one gemm straight into the gradient
//   db[OUT]     = beta_b * db + sum_n dy[n, :]   (skipped when db == nullptr)
//   (beta 1 accumulates; beta 0 overwrites without reading: a freshly zeroed gradient)
//   dx[N, IN]    = dy @ w          (skipped when dx == nullptr: first layer of a model)
//   dx must not overlap dy, w, x, dw, db.
//
// Deterministic for any thread count (gemm never splits K; bias_grad folds fixed
// chunks in order).
#pragma once
#include "neuropil/common.h"
#include "neuropil/elementwise.h"

namespace neuropil {

template <typename T>
void linear_forward(index_t N, index_t IN, index_t OUT, const T* x, const T* w, const T* b,
                    Activation act, T* y) noexcept;

template <typename T>
void linear_backward(index_t N, index_t IN, index_t OUT, const T* x, const T* w, const T* dy,
                     T beta_w, T* dw, T beta_b, T* db, T* dx) noexcept;

}  // namespace neuropil
