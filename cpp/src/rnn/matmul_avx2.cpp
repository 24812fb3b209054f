// AVX2 + FMA recurrent-product kernel (see rnn_kernels.h). Built with -mavx2
// -mfma; everything here has internal linkage except recurrent_matmul_avx2,
// called only after CPU detection chose AVX2. No standard-library headers.
#include <immintrin.h>

#include "rnn_kernels.h"

namespace neuropil {
namespace rnn_detail {
namespace {

// R rows x one 16-column panel: 2R accumulators (R <= 6: 12 + 2 B + 1 broadcast),
// held in named variables (arrays of __m256 get spilled to the stack).
template <int R>
void tile(const float* a, std::int64_t lda, std::int64_t K, const float* b, float* c,
          std::int64_t ldc, std::int64_t valid, bool accumulate) {
  __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
  __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
  __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
  __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
  __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps();
  __m256 c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
  const float* a0 = a;
  const float* a1 = a + lda;
  const float* a2 = a + 2 * lda;
  const float* a3 = a + 3 * lda;
  const float* a4 = a + 4 * lda;
  const float* a5 = a + 5 * lda;
#pragma GCC unroll 2
  for (std::int64_t k = 0; k < K; ++k) {
    const __m256 b0 = _mm256_loadu_ps(b + k * kPanel);
    const __m256 b1 = _mm256_loadu_ps(b + k * kPanel + 8);
    __m256 ar;
    ar = _mm256_broadcast_ss(a0 + k);
    c00 = _mm256_fmadd_ps(ar, b0, c00);
    c01 = _mm256_fmadd_ps(ar, b1, c01);
    if (R > 1) {
      ar = _mm256_broadcast_ss(a1 + k);
      c10 = _mm256_fmadd_ps(ar, b0, c10);
      c11 = _mm256_fmadd_ps(ar, b1, c11);
    }
    if (R > 2) {
      ar = _mm256_broadcast_ss(a2 + k);
      c20 = _mm256_fmadd_ps(ar, b0, c20);
      c21 = _mm256_fmadd_ps(ar, b1, c21);
    }
    if (R > 3) {
      ar = _mm256_broadcast_ss(a3 + k);
      c30 = _mm256_fmadd_ps(ar, b0, c30);
      c31 = _mm256_fmadd_ps(ar, b1, c31);
    }
    if (R > 4) {
      ar = _mm256_broadcast_ss(a4 + k);
      c40 = _mm256_fmadd_ps(ar, b0, c40);
      c41 = _mm256_fmadd_ps(ar, b1, c41);
    }
    if (R > 5) {
      ar = _mm256_broadcast_ss(a5 + k);
      c50 = _mm256_fmadd_ps(ar, b0, c50);
      c51 = _mm256_fmadd_ps(ar, b1, c51);
    }
  }
  const __m256 lo[6] = {c00, c10, c20, c30, c40, c50};
  const __m256 hi[6] = {c01, c11, c21, c31, c41, c51};
  for (int r = 0; r < R; ++r) {
    float* cr = c + r * ldc;
    __m256 v0 = lo[r], v1 = hi[r];
    if (valid == kPanel) {
      if (accumulate) {
        v0 = _mm256_add_ps(_mm256_loadu_ps(cr), v0);
        v1 = _mm256_add_ps(_mm256_loadu_ps(cr + 8), v1);
      }
      _mm256_storeu_ps(cr, v0);
      _mm256_storeu_ps(cr + 8, v1);
    } else {  // last, partial panel: never touch c past Ncols
      alignas(32) float tmp[kPanel];
      _mm256_store_ps(tmp, v0);
      _mm256_store_ps(tmp + 8, v1);
      for (std::int64_t j = 0; j < valid; ++j) cr[j] = accumulate ? cr[j] + tmp[j] : tmp[j];
    }
  }
}

}  // namespace

void recurrent_matmul_avx2(const float* a, std::int64_t lda, std::int64_t M, std::int64_t K,
                           const float* bp, std::int64_t Ncols, std::int64_t p0,
                           std::int64_t p1, float* c, std::int64_t ldc, bool accumulate) {
  // K in blocks of kKc so a panel's block (kKc x 16 floats = 16 KiB) stays in L1
  // while every row block of a reads it; later blocks accumulate into c.
  constexpr std::int64_t kKc = 256;
  for (std::int64_t p = p0; p < p1; ++p) {
    const std::int64_t j0 = p * kPanel;
    const std::int64_t valid = Ncols - j0 < kPanel ? Ncols - j0 : kPanel;
    for (std::int64_t k0 = 0; k0 < K; k0 += kKc) {
      const std::int64_t kc = K - k0 < kKc ? K - k0 : kKc;
      const float* b = bp + (p * K + k0) * kPanel;
      const float* ak = a + k0;
      const bool acc = accumulate || k0 > 0;
      // 6-row tiles, but a tail of 1 or 2 rows (latency-bound: 2-4 FMA chains)
      // is merged with the last full tile into 4 + 3 or 4 + 4 rows.
      const std::int64_t rem = M % 6;
      const std::int64_t full_end = (rem == 1 || rem == 2) && M >= 6 + rem ? M - rem - 6 : M - rem;
      std::int64_t i = 0;
      for (; i < full_end; i += 6)
        tile<6>(ak + i * lda, lda, kc, b, c + i * ldc + j0, ldc, valid, acc);
      if (M - i >= 7) {
        tile<4>(ak + i * lda, lda, kc, b, c + i * ldc + j0, ldc, valid, acc);
        i += 4;
      }
      switch (M - i) {
        case 5: tile<5>(ak + i * lda, lda, kc, b, c + i * ldc + j0, ldc, valid, acc); break;
        case 4: tile<4>(ak + i * lda, lda, kc, b, c + i * ldc + j0, ldc, valid, acc); break;
        case 3: tile<3>(ak + i * lda, lda, kc, b, c + i * ldc + j0, ldc, valid, acc); break;
        case 2: tile<2>(ak + i * lda, lda, kc, b, c + i * ldc + j0, ldc, valid, acc); break;
        case 1: tile<1>(ak + i * lda, lda, kc, b, c + i * ldc + j0, ldc, valid, acc); break;
        default: break;
      }
    }
  }
}

}  // namespace rnn_detail
}  // namespace neuropil
