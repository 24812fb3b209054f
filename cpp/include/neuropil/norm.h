// Batch normalisation (PyTorch's BatchNorm1d/2d arithmetic). No Python here.
//
// Layout: x [N, C, L], C-contiguous: L = H*W for (N, C, H, W), L for (N, C, L),
// 1 for (N, C). Channel c owns the M = N*L elements x[n, c, l].
//
// batch_norm_forward (batch_stats = true: training, or no running statistics):
//   mean[c] = (1/M) sum x;   var[c] = (1/M) sum (x - mean[c])^2   (biased)
//   invstd[c] = 1 / sqrt(var[c] + eps)
//   y = (x - mean[c]) * invstd[c] * gamma[c] + beta[c]
//   save_mean/save_invstd [C] receive mean and invstd (for the backward).
//   running_mean/running_var [C] (both or neither nullptr) are updated, M >= 2:
//     running_mean = (1 - momentum) * running_mean + momentum * mean
//     running_var  = (1 - momentum) * running_var  + momentum * var * M / (M - 1)
// batch_norm_forward (batch_stats = false: evaluation with running statistics):
//   the same y with mean = running_mean, invstd = 1/sqrt(running_var + eps); both are
//   written to save_mean/save_invstd; the running statistics are only read.
// gamma == nullptr means 1, beta == nullptr means 0 (affine=False).
// NaN in x propagates to its channel's statistics and outputs.
//
// batch_norm_backward, from dy [N, C, L] and the saved mean/invstd:
//   sdy[c]  = sum dy;   sdxm[c] = sum dy * (x - mean[c])
//   dgamma  = beta_gamma * dgamma + invstd * sdxm             (= sum dy * xhat)
//   dbeta   = beta_beta  * dbeta  + sdy
//   batch_stats: dx = gamma * invstd * (dy - sdy/M - (x - mean) * invstd^2 * sdxm/M)
//                (the fused form of (1/M) invstd gamma (M dy - sum dy - xhat sum dy xhat))
//   otherwise (running statistics are constants): dx = gamma * invstd * dy
//   dx, dgamma, dbeta may each be nullptr (not computed); beta 0 overwrites without
//   reading (a freshly zeroed gradient), 1 accumulates.
//
// Determinism: each channel's sums are taken over FIXED chunks of its elements (rows
// of the batch, or pieces of a long row; the chunking depends on N, C, L only), each
// chunk summed in a fixed order, and the chunk partials are folded in chunk order in
// double (mean and M2 merged as Chan et al.). Chunks are spread over threads, so the
// results are bitwise identical for any thread count. Statistics are accumulated in
// double per chunk merge; within a chunk (at most 4096 elements of a channel) in T.
#pragma once
#include "neuropil/common.h"

namespace neuropil {

template <typename T>
void batch_norm_forward(index_t N, index_t C, index_t L, const T* x, const T* gamma,
                        const T* beta, double eps, bool batch_stats, double momentum,
                        T* running_mean, T* running_var, T* save_mean, T* save_invstd,
                        T* y) noexcept;

template <typename T>
void batch_norm_backward(index_t N, index_t C, index_t L, const T* x, const T* dy,
                         const T* gamma, const T* mean, const T* invstd, bool batch_stats,
                         T* dx, T beta_gamma, T* dgamma, T beta_beta, T* dbeta) noexcept;

}  // namespace neuropil
