// Fused optimizer updates: one pass over a parameter, its gradient and its
// optimizer state, in place. Element-wise, so every element's result is the
// same whatever the thread count (no reductions). All arrays hold n elements,
// C-contiguous; param and the state arrays are updated in place and must not
// overlap grad or each other (the bindings check this). Hyper-parameters are
// applied in T (float or double), as PyTorch does for a tensor of that dtype.
// Semantics are PyTorch's documented algorithms (torch.optim.SGD / Adam).
#pragma once
#include "neuropil/common.h"

namespace neuropil {

// SGD with momentum, dampening, Nesterov, L2 (weight_decay) and L1:
//   g = grad + weight_decay * w + l1 * sign(w)            (sign(0) = 0)
//   if momentum != 0:
//     b = g                                  on the first step (first_step)
//     b = momentum * b + (1 - dampening) * g otherwise
//     g = g + momentum * b   if nesterov, else g = b
//   w = w - lr * g
// momentum_buf [n] is read/written only when momentum != 0 (may be null
// otherwise); with first_step it is write-only.
void sgd_update(index_t n, const float* grad, float lr, float momentum, float dampening,
                float weight_decay, float l1, bool nesterov, bool first_step, float* param,
                float* momentum_buf) noexcept;
void sgd_update(index_t n, const double* grad, double lr, double momentum, double dampening,
                double weight_decay, double l1, bool nesterov, bool first_step, double* param,
                double* momentum_buf) noexcept;

// Adam (optionally AMSGrad), L2 weight decay added to the gradient (not AdamW):
//   g  = grad + weight_decay * w
//   m  = beta1 * m + (1 - beta1) * g
//   v  = beta2 * v + (1 - beta2) * g^2
//   bc1 = 1 - beta1^step,  bc2 = 1 - beta2^step          (step >= 1, counted by caller)
//   vh = max(vmax, v) -> stored back in vmax             if amsgrad (vmax != null;
//                                                        NaN in either propagates)
//   vh = v                                               otherwise
//   w  = w - (lr / bc1) * m / (sqrt(vh) / sqrt(bc2) + eps)
// exp_avg (m), exp_avg_sq (v) [n] start at zero; max_exp_avg_sq (vmax) [n] is
// null unless amsgrad. Bias corrections are computed in double, then cast to T.
void adam_update(index_t n, const float* grad, float lr, float beta1, float beta2, float eps,
                 float weight_decay, index_t step, float* param, float* exp_avg,
                 float* exp_avg_sq, float* max_exp_avg_sq) noexcept;
void adam_update(index_t n, const double* grad, double lr, double beta1, double beta2,
                 double eps, double weight_decay, index_t step, double* param, double* exp_avg,
                 double* exp_avg_sq, double* max_exp_avg_sq) noexcept;

}  // namespace neuropil
