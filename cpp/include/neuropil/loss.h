// Loss kernels, each fused with its gradient: one pass computes the loss and
// d loss / d input. Conventions of neuropil/elementwise.h, plus:
//
//   - Reduction Mean / Sum: the function returns L = sum_i l_i / s (s below; Sum: s = 1)
//     as a double and, when grad != nullptr, writes grad = dL/dinput; `losses` is unused.
//   - Reduction None: the function writes the per-element losses into `losses` (the
//     shape PyTorch returns) and, when grad != nullptr, grad[i] = d l_i / d input_i
//     (d l_p / d input[n, :, s] for the class losses): the gradient of sum(losses).
//     The upstream gradient of the losses is applied afterwards by broadcast_scale.
//     Returns 0.
//   - Sums are accumulated in double over FIXED-size chunks of elements (positions for
//     the class losses) folded in chunk order: bitwise identical for any thread count.
//   - grad may equal the input (in place); it must not overlap anything else.
//   - NaN in an input gives a NaN loss (and NaN gradient where it enters), never a trap.
#pragma once
#include <cstdint>

#include "neuropil/common.h"

namespace neuropil {

enum class Reduction : int { Mean = 0, Sum = 1, None = 2 };

// --- class losses over [N, C, S] ----------------------------------------------
// Input x [N, C, S]: N samples, C classes, S = d1 * d2 * ... positions per sample
// (S = 1 for (N, C) input; S = H*W for per-pixel (N, C, H, W) logits). x[n, c, s] at
// (n * C + c) * S + s. A "position" p = n * S + s owns the C values x[n, :, s].
//
// Class-index targets labels [N, S] (int64): each in 0..C-1 or equal to ignore_index
// (the bindings check). w_p = weight[labels_p] (1 without weight), 0 where ignored.
// Mean divides by W = sum_p w_p (PyTorch's weighted mean); W = 0 (every target
// ignored) gives a NaN loss and a zero gradient at ignored positions, as PyTorch.
// An ignored position has loss 0 and gradient 0 in every reduction.
//
// softmax_cross_entropy_labels: x are logits;
//     l_p = w_p (logsumexp_c x[n, :, s] - x[n, y_p, s])
//     grad[n, c, s] = w_p (softmax(x[n, :, s])_c - [c == y_p]) / s_red
//   s_red = W (Mean), 1 (Sum or None). Stable for any finite x (max subtraction).
template <typename T>
double softmax_cross_entropy_labels(index_t N, index_t C, index_t S, const T* logits,
                                    const std::int64_t* labels, const T* weight,
                                    std::int64_t ignore_index, Reduction reduction, T* losses,
                                    T* grad) noexcept;

// softmax_cross_entropy_targets: targets t [N, C, S] (one-hot or probabilities; any real
// values), optional class weights w_c:
//     l_p = -sum_c w_c t[n, c, s] log_softmax(x[n, :, s])_c
//     grad[n, c, s] = (softmax_c * sum_k w_k t[n, k, s] - w_c t[n, c, s]) / s_red
//   s_red = N * S (Mean: PyTorch divides probability targets by the count, not the
//   weights), 1 otherwise. t = 0 contributes nothing even where log_softmax is -inf.
template <typename T>
double softmax_cross_entropy_targets(index_t N, index_t C, index_t S, const T* logits,
                                     const T* targets, const T* weight, Reduction reduction,
                                     T* losses, T* grad) noexcept;

// nll_loss: x are log-probabilities;
//     l_p = -w_p x[n, y_p, s];   grad[n, c, s] = -w_p [c == y_p] / s_red   (s_red as above)
template <typename T>
double nll_loss(index_t N, index_t C, index_t S, const T* logp, const std::int64_t* labels,
                const T* weight, std::int64_t ignore_index, Reduction reduction, T* losses,
                T* grad) noexcept;

// --- elementwise losses over n elements (s = n for Mean) ------------------------
// mse_loss:        l_i = (p_i - t_i)^2;                    grad_i = 2 (p_i - t_i) / s
// l1_loss:         l_i = |p_i - t_i|;                      grad_i = sign(p_i - t_i) / s
//                  (0 where p = t, as PyTorch; NaN where p - t is NaN)
// bce_with_logits: l_i = max(x_i, 0) - x_i t_i + log1p(e^-|x_i|)
//                  (= -t log sigmoid(x) - (1-t) log(1 - sigmoid(x)), never overflows);
//                  grad_i = (sigmoid(x_i) - t_i) / s
// binary_cross_entropy (inputs are probabilities p in [0, 1]):
//                  l_i = -(t_i max(log p_i, -100) + (1 - t_i) max(log(1 - p_i), -100))
//                  grad_i = (p_i - t_i) / max(p_i (1 - p_i), 1e-12) / s
//                  (PyTorch's clamps: finite at p = 0 and 1). An input outside [0, 1]
//                  (not NaN) sets *first_invalid to the smallest such index (else n);
//                  the outputs are then unspecified (the bindings raise).
// Chunks of 4096 elements.
template <typename T>
double mse_loss(index_t n, const T* pred, const T* target, Reduction reduction, T* losses,
                T* grad) noexcept;
template <typename T>
double l1_loss(index_t n, const T* pred, const T* target, Reduction reduction, T* losses,
               T* grad) noexcept;
template <typename T>
double bce_with_logits(index_t n, const T* logits, const T* target, Reduction reduction,
                       T* losses, T* grad) noexcept;
template <typename T>
double binary_cross_entropy(index_t n, const T* prob, const T* target, Reduction reduction,
                            T* losses, T* grad, index_t* first_invalid) noexcept;

// --- backward of a reduction-None loss --------------------------------------------
// broadcast_scale: dx[N, C, S] = g[N, C, S] * w[N, S]: the gradient of sum(w * losses)
// from the per-element gradients g of a None loss and the upstream gradient w of its
// losses (C = 1 for the elementwise losses). In place allowed (dx == g).
template <typename T>
void broadcast_scale(index_t N, index_t C, index_t S, const T* g, const T* w, T* dx) noexcept;

}  // namespace neuropil
