// AVX2 build of the optimizer chunk kernels: the same code as optim.cpp's
// portable copy (optim_kernels.inc), vectorised 8-wide (float) or 4-wide
// (double). Built with -mavx2 -ffp-contract=off (GCC contracts a * b + c into
// an FMA in C++ even in ISO mode), so the results are bitwise those of the
// portable build (tested). Internal linkage except the entry points, called
// only after CPU detection chose AVX2.
// Same-process A/B on Zen 3: SGD with momentum 1.19-1.31x the portable build.
#include "optim_kernels.h"

namespace neuropil {
namespace optim_detail {
namespace {
#include "optim_kernels.inc"
}  // namespace

void sgd_chunk_avx2(index_t begin, index_t end, const float* grad, float lr, float momentum,
                    float dampening, float weight_decay, float l1, bool nesterov,
                    bool first_step, float* w, float* buf) {
  sgd_chunk(begin, end, grad, lr, momentum, dampening, weight_decay, l1, nesterov, first_step, w,
            buf);
}
void sgd_chunk_avx2(index_t begin, index_t end, const double* grad, double lr, double momentum,
                    double dampening, double weight_decay, double l1, bool nesterov,
                    bool first_step, double* w, double* buf) {
  sgd_chunk(begin, end, grad, lr, momentum, dampening, weight_decay, l1, nesterov, first_step, w,
            buf);
}
void adam_chunk_avx2(index_t begin, index_t end, const float* grad, float step_size, float beta1,
                     float beta2, float eps, float weight_decay, float inv_sqrt_bc2, float* w,
                     float* m, float* v, float* vmax) {
  adam_chunk(begin, end, grad, step_size, beta1, beta2, eps, weight_decay, inv_sqrt_bc2, w, m, v,
             vmax);
}
void adam_chunk_avx2(index_t begin, index_t end, const double* grad, double step_size,
                     double beta1, double beta2, double eps, double weight_decay,
                     double inv_sqrt_bc2, double* w, double* m, double* v, double* vmax) {
  adam_chunk(begin, end, grad, step_size, beta1, beta2, eps, weight_decay, inv_sqrt_bc2, w, m, v,
             vmax);
}

}  // namespace optim_detail
}  // namespace neuropil
