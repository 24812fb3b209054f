// Portable GEMM micro-kernels: plain loops the compiler vectorises for the
// baseline ISA (SSE2 on x86-64, NEON on aarch64).
#include "kernels.h"

namespace neuropil {
namespace gemm_detail {
namespace {

template <typename T, int MR, int NR>
void ukr_generic(std::int64_t kc, const T* a, const T* b, T* c, std::int64_t ldc, T alpha,
                 T beta) {
  T acc[MR][NR] = {};
  for (std::int64_t k = 0; k < kc; ++k) {
    for (int i = 0; i < MR; ++i) {
      const T ai = a[i];
      for (int j = 0; j < NR; ++j) acc[i][j] += ai * b[j];
    }
    a += MR;
    b += NR;
  }
  for (int i = 0; i < MR; ++i) {
    T* ci = c + i * ldc;
    if (beta == T(0)) {
      for (int j = 0; j < NR; ++j) ci[j] = alpha * acc[i][j];
    } else {
      for (int j = 0; j < NR; ++j) ci[j] = alpha * acc[i][j] + beta * ci[j];
    }
  }
}

}  // namespace

KernelTable generic_kernels() {
  KernelTable t;
  t.sgemm = &ukr_generic<float, 4, 8>;
  t.s = Blocking{4, 8, 128, 256, 2048};
  t.dgemm = &ukr_generic<double, 4, 4>;
  t.d = Blocking{4, 4, 64, 256, 1024};
  return t;
}

}  // namespace gemm_detail
}  // namespace neuropil
