// Fused optimizer updates (math in neuropil/optim.h). Plain loops the compiler
// vectorises (optim_kernels.inc; one read of grad, one read+write of param and
// each state array), in their AVX2 build when the CPU runs it; large
// parameters are split across threads in contiguous chunks, and each
// element's arithmetic depends neither on the split nor on the ISA.
#include "neuropil/optim.h"

#include <cmath>

#include "neuropil/cpu.h"
#include "neuropil/parallel.h"
#include "optim_kernels.h"

namespace neuropil {
namespace {

#include "optim_kernels.inc"

// Below this many elements one thread is faster than waking the pool.
constexpr index_t kParallelMin = 1 << 15;

int threads_for(index_t n) { return n >= kParallelMin ? get_num_threads() : 1; }

template <typename T>
void sgd_impl(index_t n, const T* grad, T lr, T momentum, T dampening, T weight_decay, T l1,
              bool nesterov, bool first_step, T* param, T* buf) {
  using Fn = void (*)(index_t, index_t, const T*, T, T, T, T, T, bool, bool, T*, T*);
  Fn chunk = &sgd_chunk<T>;
#ifdef NEUROPIL_HAVE_AVX2
  if (active_isa() >= Isa::Avx2) chunk = &optim_detail::sgd_chunk_avx2;
#endif
  parallel_for(n, threads_for(n), [&](index_t begin, index_t end) {
    chunk(begin, end, grad, lr, momentum, dampening, weight_decay, l1, nesterov, first_step,
          param, buf);
  });
}

template <typename T>
void adam_impl(index_t n, const T* grad, T lr, T beta1, T beta2, T eps, T weight_decay,
               index_t step, T* param, T* m, T* v, T* vmax) {
  const double bc1 = 1.0 - std::pow(static_cast<double>(beta1), static_cast<double>(step));
  const double bc2 = 1.0 - std::pow(static_cast<double>(beta2), static_cast<double>(step));
  const T step_size = static_cast<T>(static_cast<double>(lr) / bc1);
  const T inv_sqrt_bc2 = static_cast<T>(1.0 / std::sqrt(bc2));
  using Fn = void (*)(index_t, index_t, const T*, T, T, T, T, T, T, T*, T*, T*, T*);
  Fn chunk = &adam_chunk<T>;
#ifdef NEUROPIL_HAVE_AVX2
  if (active_isa() >= Isa::Avx2) chunk = &optim_detail::adam_chunk_avx2;
#endif
  parallel_for(n, threads_for(n), [&](index_t begin, index_t end) {
    chunk(begin, end, grad, step_size, beta1, beta2, eps, weight_decay, inv_sqrt_bc2, param, m, v,
          vmax);
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
