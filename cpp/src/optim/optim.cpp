// Fused optimizer updates (math in neuropil/optim.h). Plain loops the compiler
// vectorises (memory-bound: one read of grad, one read+write of param and
// each state array); large parameters are split across threads in contiguous
// chunks, and each element's arithmetic does not depend on the split.
#include "neuropil/optim.h"

#include <cmath>

#include "neuropil/parallel.h"

namespace neuropil {
namespace {

// Below this many elements one thread is faster than waking the pool.
constexpr index_t kParallelMin = 1 << 15;

int threads_for(index_t n) { return n >= kParallelMin ? get_num_threads() : 1; }

template <typename T>
inline T sign_of(T w) {
  return static_cast<T>((w > T(0)) - (w < T(0)));
}

template <typename T>
void sgd_chunk(index_t begin, index_t end, const T* __restrict grad, T lr, T momentum,
               T dampening, T weight_decay, T l1, bool nesterov, bool first_step,
               T* __restrict w, T* __restrict buf) {
  const bool decay = weight_decay != T(0), lasso = l1 != T(0);
  if (momentum == T(0)) {
    for (index_t i = begin; i < end; ++i) {
      T g = grad[i];
      if (decay) g += weight_decay * w[i];
      if (lasso) g += l1 * sign_of(w[i]);
      w[i] -= lr * g;
    }
    return;
  }
  const T keep = T(1) - dampening;
  for (index_t i = begin; i < end; ++i) {
    T g = grad[i];
    if (decay) g += weight_decay * w[i];
    if (lasso) g += l1 * sign_of(w[i]);
    const T b = first_step ? g : momentum * buf[i] + keep * g;
    buf[i] = b;
    w[i] -= lr * (nesterov ? g + momentum * b : b);
  }
}

template <typename T>
void sgd_impl(index_t n, const T* grad, T lr, T momentum, T dampening, T weight_decay, T l1,
              bool nesterov, bool first_step, T* param, T* buf) {
  parallel_for(n, threads_for(n), [&](index_t begin, index_t end) {
    sgd_chunk(begin, end, grad, lr, momentum, dampening, weight_decay, l1, nesterov, first_step,
              param, buf);
  });
}

template <typename T>
void adam_chunk(index_t begin, index_t end, const T* __restrict grad, T step_size, T beta1,
                T beta2, T eps, T weight_decay, T inv_sqrt_bc2, T* __restrict w,
                T* __restrict m, T* __restrict v, T* __restrict vmax) {
  const T a1 = T(1) - beta1, a2 = T(1) - beta2;
  for (index_t i = begin; i < end; ++i) {
    T g = grad[i];
    if (weight_decay != T(0)) g += weight_decay * w[i];
    const T mi = beta1 * m[i] + a1 * g;
    const T vi = beta2 * v[i] + a2 * g * g;
    m[i] = mi;
    v[i] = vi;
    T vh = vi;
    if (vmax) {
      vh = vmax[i] > vi ? vmax[i] : vi;
      vmax[i] = vh;
    }
    const T denom = std::sqrt(vh) * inv_sqrt_bc2 + eps;
    w[i] -= step_size * mi / denom;
  }
}

template <typename T>
void adam_impl(index_t n, const T* grad, T lr, T beta1, T beta2, T eps, T weight_decay,
               index_t step, T* param, T* m, T* v, T* vmax) {
  const double bc1 = 1.0 - std::pow(static_cast<double>(beta1), static_cast<double>(step));
  const double bc2 = 1.0 - std::pow(static_cast<double>(beta2), static_cast<double>(step));
  const T step_size = static_cast<T>(static_cast<double>(lr) / bc1);
  const T inv_sqrt_bc2 = static_cast<T>(1.0 / std::sqrt(bc2));
  parallel_for(n, threads_for(n), [&](index_t begin, index_t end) {
    adam_chunk(begin, end, grad, step_size, beta1, beta2, eps, weight_decay, inv_sqrt_bc2, param,
               m, v, vmax);
  });
}

}  // namespace

void sgd_update(index_t n, const float* grad, float lr, float momentum, float dampening,
                float weight_decay, float l1, bool nesterov, bool first_step, float* param,
                float* momentum_buf) noexcept {
  sgd_impl(n, grad, lr, momentum, dampening, weight_decay, l1, nesterov, first_step, param,
           momentum_buf);
}
void sgd_update(index_t n, const double* grad, double lr, double momentum, double dampening,
                double weight_decay, double l1, bool nesterov, bool first_step, double* param,
                double* momentum_buf) noexcept {
  sgd_impl(n, grad, lr, momentum, dampening, weight_decay, l1, nesterov, first_step, param,
           momentum_buf);
}

void adam_update(index_t n, const float* grad, float lr, float beta1, float beta2, float eps,
                 float weight_decay, index_t step, float* param, float* exp_avg,
                 float* exp_avg_sq, float* max_exp_avg_sq) noexcept {
  adam_impl(n, grad, lr, beta1, beta2, eps, weight_decay, step, param, exp_avg, exp_avg_sq,
            max_exp_avg_sq);
}
void adam_update(index_t n, const double* grad, double lr, double beta1, double beta2,
                 double eps, double weight_decay, index_t step, double* param, double* exp_avg,
                 double* exp_avg_sq, double* max_exp_avg_sq) noexcept {
  adam_impl(n, grad, lr, beta1, beta2, eps, weight_decay, step, param, exp_avg, exp_avg_sq,
            max_exp_avg_sq);
}

}  // namespace neuropil
