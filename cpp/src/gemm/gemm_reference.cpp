// Reference twin of gemm(): the textbook triple loop, one thread, k order.
#include "neuropil/gemm.h"

namespace neuropil {
namespace {

template <typename T>
void gemm_ref(Trans ta, Trans tb, index_t M, index_t N, index_t K, T alpha, const T* A,
              index_t lda, const T* B, index_t ldb, T beta, T* C, index_t ldc) {
  for (index_t i = 0; i < M; ++i) {
    for (index_t j = 0; j < N; ++j) {
      T acc = T(0);
      if (alpha != T(0)) {
        for (index_t p = 0; p < K; ++p) {
          const T a = ta == Trans::No ? A[i * lda + p] : A[p * lda + i];
          const T b = tb == Trans::No ? B[p * ldb + j] : B[j * ldb + p];
          acc += a * b;
        }
      }
      T& c = C[i * ldc + j];
      c = beta == T(0) ? alpha * acc : alpha * acc + beta * c;
    }
  }
}

}  // namespace

void gemm_reference(Trans ta, Trans tb, index_t M, index_t N, index_t K, float alpha,
                    const float* A, index_t lda, const float* B, index_t ldb, float beta,
                    float* C, index_t ldc) noexcept {
  gemm_ref<float>(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void gemm_reference(Trans ta, Trans tb, index_t M, index_t N, index_t K, double alpha,
                    const double* A, index_t lda, const double* B, index_t ldb, double beta,
                    double* C, index_t ldc) noexcept {
  gemm_ref<double>(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

}  // namespace neuropil
