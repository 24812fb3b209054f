// AVX-512F float GEMM micro-kernels (6 x 32: 12 zmm accumulators). The only
// translation unit built with -mavx512f; everything in it has internal
// linkage except avx512_kernels() and fma_loop_avx512(), called only after
// CPU detection confirmed AVX-512F. Double precision, packing of A and the
// transposed store reuse the AVX2 table (every AVX-512 CPU runs AVX2).
#include <immintrin.h>

#include "kernels.h"

namespace neuropil {
namespace gemm_detail {
namespace {

// Up to 6 x 32 float tile; a(i, k) = a[i * rs_a + k * cs_a], with kPacked
// fixing rs_a = 1, cs_a = 6 at compile time; R < 6 computes and stores only
// the first R rows. Same contract as the AVX2 kernels (see kernels.h).
template <bool kPacked, int R>
void sgemm_body(std::int64_t kc, const float* a, std::int64_t rs_a, std::int64_t cs_a,
                const float* b, float* c, std::int64_t ldc, float alpha, float beta) {
  static_assert(R >= 1 && R <= 6, "1 to 6 rows");
  if (kPacked) {
    rs_a = 1;
    cs_a = 6;
  }
  for (int i = 0; i < R; ++i) {
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + 31), _MM_HINT_T0);
  }
  const float* a0 = a;
  const float* a1 = a + rs_a;
  const float* a2 = a + 2 * rs_a;
  const float* a3 = a + 3 * rs_a;
  const float* a4 = a + 4 * rs_a;
  const float* a5 = a + 5 * rs_a;
  __m512 c00 = _mm512_setzero_ps(), c01 = _mm512_setzero_ps();
  __m512 c10 = _mm512_setzero_ps(), c11 = _mm512_setzero_ps();
  __m512 c20 = _mm512_setzero_ps(), c21 = _mm512_setzero_ps();
  __m512 c30 = _mm512_setzero_ps(), c31 = _mm512_setzero_ps();
  __m512 c40 = _mm512_setzero_ps(), c41 = _mm512_setzero_ps();
  __m512 c50 = _mm512_setzero_ps(), c51 = _mm512_setzero_ps();
#pragma GCC unroll 4
  for (std::int64_t k = 0; k < kc; ++k) {
    const std::int64_t o = k * cs_a;
    if (kPacked) _mm_prefetch(reinterpret_cast<const char*>(a0 + o + 96), _MM_HINT_T0);
    const __m512 b0 = _mm512_loadu_ps(b);
    const __m512 b1 = _mm512_loadu_ps(b + 16);
    __m512 ai = _mm512_set1_ps(a0[o]);
    c00 = _mm512_fmadd_ps(ai, b0, c00);
    c01 = _mm512_fmadd_ps(ai, b1, c01);
    if (R > 1) {
      ai = _mm512_set1_ps(a1[o]);
      c10 = _mm512_fmadd_ps(ai, b0, c10);
      c11 = _mm512_fmadd_ps(ai, b1, c11);
    }
    if (R > 2) {
      ai = _mm512_set1_ps(a2[o]);
      c20 = _mm512_fmadd_ps(ai, b0, c20);
      c21 = _mm512_fmadd_ps(ai, b1, c21);
    }
    if (R > 3) {
      ai = _mm512_set1_ps(a3[o]);
      c30 = _mm512_fmadd_ps(ai, b0, c30);
      c31 = _mm512_fmadd_ps(ai, b1, c31);
    }
    if (R > 4) {
      ai = _mm512_set1_ps(a4[o]);
      c40 = _mm512_fmadd_ps(ai, b0, c40);
      c41 = _mm512_fmadd_ps(ai, b1, c41);
    }
    if (R > 5) {
      ai = _mm512_set1_ps(a5[o]);
      c50 = _mm512_fmadd_ps(ai, b0, c50);
      c51 = _mm512_fmadd_ps(ai, b1, c51);
    }
    b += 32;
  }
  const __m512 va = _mm512_set1_ps(alpha);
  __m512 rows[6][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}, {c40, c41}, {c50, c51}};
  if (beta == 0.0f) {
    for (int i = 0; i < R; ++i) {
      _mm512_storeu_ps(c + i * ldc, _mm512_mul_ps(va, rows[i][0]));
      _mm512_storeu_ps(c + i * ldc + 16, _mm512_mul_ps(va, rows[i][1]));
    }
  } else {
    const __m512 vb = _mm512_set1_ps(beta);
    for (int i = 0; i < R; ++i) {
      float* ci = c + i * ldc;
      _mm512_storeu_ps(ci, _mm512_fmadd_ps(vb, _mm512_loadu_ps(ci), _mm512_mul_ps(va, rows[i][0])));
      _mm512_storeu_ps(ci + 16, _mm512_fmadd_ps(vb, _mm512_loadu_ps(ci + 16),
                                                _mm512_mul_ps(va, rows[i][1])));
    }
  }
}

void sgemm_6x32(std::int64_t kc, const float* a, const float* b, float* c, std::int64_t ldc,
                float alpha, float beta) {
  sgemm_body<true, 6>(kc, a, 1, 6, b, c, ldc, alpha, beta);
}

template <int R>
void sgemm_rx32_ga(std::int64_t kc, const float* a, std::int64_t rs_a, std::int64_t cs_a,
                   const float* b, float* c, std::int64_t ldc, float alpha, float beta) {
  sgemm_body<false, R>(kc, a, rs_a, cs_a, b, c, ldc, alpha, beta);
}

}  // namespace

KernelTable avx512_kernels() {
  KernelTable t = avx2_kernels();  // double precision and A packing stay AVX2
  t.sgemm = &sgemm_6x32;
  t.s = Blocking{6, 32, 144, 256, 3072};
  t.spack_b = &pack_b_generic_f32_nr32;
  t.sgemm_ga = &sgemm_rx32_ga<6>;
  t.sgemm_ga_rows[0] = &sgemm_rx32_ga<1>;
  t.sgemm_ga_rows[1] = &sgemm_rx32_ga<2>;
  t.sgemm_ga_rows[2] = &sgemm_rx32_ga<3>;
  t.sgemm_ga_rows[3] = &sgemm_rx32_ga<4>;
  t.sgemm_ga_rows[4] = &sgemm_rx32_ga<5>;
  t.sgemm_ga_rows[5] = &sgemm_rx32_ga<6>;
  t.sstore_t = nullptr;  // the AVX2 one is 6 x 16; C^T tiles go through store_tile
  return t;
}

// FMA-loop peak probe for AVX-512: 12 independent zmm chains.
double fma_loop_avx512(std::int64_t iters) {
  __m512 x[12];
  const __m512 m = _mm512_set1_ps(0.999999f), add = _mm512_set1_ps(1e-7f);
  for (int i = 0; i < 12; ++i) x[i] = _mm512_set1_ps(static_cast<float>(i));
  for (std::int64_t it = 0; it < iters; ++it) {
#pragma GCC unroll 12
    for (int i = 0; i < 12; ++i) x[i] = _mm512_fmadd_ps(x[i], m, add);
  }
  __m512 s = x[0];
  for (int i = 1; i < 12; ++i) s = _mm512_add_ps(s, x[i]);
  volatile float sink = _mm512_reduce_add_ps(s);
  (void)sink;
  return 2.0 * 16 * 12 * static_cast<double>(iters);
}

}  // namespace gemm_detail
}  // namespace neuropil
