// Optimizer chunk kernels (optim_kernels.inc) in their AVX2 build, float and
// double (optim_avx2.cpp, -mavx2 -ffp-contract=off): call only when the
// active ISA is AVX2 or better. The portable build lives inside optim.cpp.
#pragma once
#include "neuropil/common.h"

namespace neuropil {
namespace optim_detail {

#ifdef NEUROPIL_HAVE_AVX2
void sgd_chunk_avx2(index_t begin, index_t end, const float* grad, float lr, float momentum,
                    float dampening, float weight_decay, float l1, bool nesterov,
                    bool first_step, float* w, float* buf);
void sgd_chunk_avx2(index_t begin, index_t end, const double* grad, double lr, double momentum,
                    double dampening, double weight_decay, double l1, bool nesterov,
                    bool first_step, double* w, double* buf);
void adam_chunk_avx2(index_t begin, index_t end, const float* grad, float step_size, float beta1,
                     float beta2, float eps, float weight_decay, float inv_sqrt_bc2, float* w,
                     float* m, float* v, float* vmax);
void adam_chunk_avx2(index_t begin, index_t end, const double* grad, double step_size,
                     double beta1, double beta2, double eps, double weight_decay,
                     double inv_sqrt_bc2, double* w, double* m, double* v, double* vmax);
#endif

}  // namespace optim_detail
}  // namespace neuropil
