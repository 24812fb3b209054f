// AVX2 + FMA GEMM micro-kernels. This is the only translation unit built with
// -mavx2 -mfma; everything in it has internal linkage except avx2_kernels(),
// which is called only after CPU detection. It includes no standard-library
// headers with inline code, so no AVX2-compiled copy of a shared inline
// function can leak into portable code.
#include <immintrin.h>

#include "kernels.h"

namespace neuropil {
namespace gemm_detail {
namespace {

// Epilogue of a tile of R rows held in two registers each (x<r>0, x<r>1):
// x = alpha * x (beta 0: C never read) or alpha * x + beta * c, then stored.
// Every load of C comes before the first store: with ldc a multiple of 1024
// floats the rows share their low 12 address bits, and a load issued after a
// store to another row would wait on it (4K aliasing). Rows are passed as
// registers, not an array: an array of the rows was spilled to the stack.
inline __m256 splat(float x) { return _mm256_set1_ps(x); }
inline __m256d splat(double x) { return _mm256_set1_pd(x); }
inline __m256 mul(__m256 a, __m256 b) { return _mm256_mul_ps(a, b); }
inline __m256d mul(__m256d a, __m256d b) { return _mm256_mul_pd(a, b); }
inline __m256 fmadd(__m256 a, __m256 b, __m256 c) { return _mm256_fmadd_ps(a, b, c); }
inline __m256d fmadd(__m256d a, __m256d b, __m256d c) { return _mm256_fmadd_pd(a, b, c); }
inline __m256 loadu(const float* p) { return _mm256_loadu_ps(p); }
inline __m256d loadu(const double* p) { return _mm256_loadu_pd(p); }
inline void storeu(float* p, __m256 v) { _mm256_storeu_ps(p, v); }
inline void storeu(double* p, __m256d v) { _mm256_storeu_pd(p, v); }

template <int R, typename T, typename V>
inline void epilogue(T alpha, T beta, T* c, std::int64_t ldc, V& x00, V& x01, V& x10, V& x11,
                     V& x20, V& x21, V& x30, V& x31, V& x40, V& x41, V& x50, V& x51) {
  constexpr int w = sizeof(V) / sizeof(T);  // lanes: the second register's offset
  V* rows[6][2] = {{&x00, &x01}, {&x10, &x11}, {&x20, &x21},
                   {&x30, &x31}, {&x40, &x41}, {&x50, &x51}};
  const V va = splat(alpha);
  if (beta == T(0)) {
    for (int i = 0; i < R; ++i)
      for (int h = 0; h < 2; ++h) *rows[i][h] = mul(va, *rows[i][h]);
  } else {
    const V vb = splat(beta);
    for (int i = 0; i < R; ++i)
      for (int h = 0; h < 2; ++h)
        *rows[i][h] = fmadd(vb, loadu(c + i * ldc + h * w), mul(va, *rows[i][h]));
  }
  for (int i = 0; i < R; ++i)
    for (int h = 0; h < 2; ++h) storeu(c + i * ldc + h * w, *rows[i][h]);
}

// Up to 6 x 16 float tile: 12 accumulators, 2 B vectors, 1 broadcast = 15 ymm.
// a(i, k) = a[i * rs_a + k * cs_a]; kPacked fixes rs_a = 1, cs_a = 6 at
// compile time (the packed panel), so one body serves both contracts. R < 6
// computes and stores only the first R rows (edge panels read in place need
// neither padding nor a detour through a buffer).
template <bool kPacked, int R>
void sgemm_body(std::int64_t kc, const float* a, std::int64_t rs_a, std::int64_t cs_a,
                const float* b, float* c, std::int64_t ldc, float alpha, float beta) {
  static_assert(R >= 1 && R <= 6, "1 to 6 rows");
  if (kPacked) {
    rs_a = 1;
    cs_a = 6;
  }
  for (int i = 0; i < R; ++i) _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
  const float* a0 = a;
  const float* a1 = a + rs_a;
  const float* a2 = a + 2 * rs_a;
  const float* a3 = a + 3 * rs_a;
  const float* a4 = a + 4 * rs_a;
  const float* a5 = a + 5 * rs_a;
  __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
  __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
  __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
  __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
  __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps();
  __m256 c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
#pragma GCC unroll 4
  for (std::int64_t k = 0; k < kc; ++k) {
    const std::int64_t o = k * cs_a;
    if (kPacked) _mm_prefetch(reinterpret_cast<const char*>(a0 + o + 96), _MM_HINT_T0);
    const __m256 b0 = _mm256_loadu_ps(b);
    const __m256 b1 = _mm256_loadu_ps(b + 8);
    __m256 ai = _mm256_broadcast_ss(a0 + o);
    c00 = _mm256_fmadd_ps(ai, b0, c00);
    c01 = _mm256_fmadd_ps(ai, b1, c01);
    if (R > 1) {
      ai = _mm256_broadcast_ss(a1 + o);
      c10 = _mm256_fmadd_ps(ai, b0, c10);
      c11 = _mm256_fmadd_ps(ai, b1, c11);
    }
    if (R > 2) {
      ai = _mm256_broadcast_ss(a2 + o);
      c20 = _mm256_fmadd_ps(ai, b0, c20);
      c21 = _mm256_fmadd_ps(ai, b1, c21);
    }
    if (R > 3) {
      ai = _mm256_broadcast_ss(a3 + o);
      c30 = _mm256_fmadd_ps(ai, b0, c30);
      c31 = _mm256_fmadd_ps(ai, b1, c31);
    }
    if (R > 4) {
      ai = _mm256_broadcast_ss(a4 + o);
      c40 = _mm256_fmadd_ps(ai, b0, c40);
      c41 = _mm256_fmadd_ps(ai, b1, c41);
    }
    if (R > 5) {
      ai = _mm256_broadcast_ss(a5 + o);
      c50 = _mm256_fmadd_ps(ai, b0, c50);
      c51 = _mm256_fmadd_ps(ai, b1, c51);
    }
    b += 16;
  }
  epilogue<R>(alpha, beta, c, ldc, c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51);
}

void sgemm_6x16(std::int64_t kc, const float* a, const float* b, float* c, std::int64_t ldc,
                float alpha, float beta) {
  sgemm_body<true, 6>(kc, a, 1, 6, b, c, ldc, alpha, beta);
}

template <int R>
void sgemm_rx16_ga(std::int64_t kc, const float* a, std::int64_t rs_a, std::int64_t cs_a,
                   const float* b, float* c, std::int64_t ldc, float alpha, float beta) {
  sgemm_body<false, R>(kc, a, rs_a, cs_a, b, c, ldc, alpha, beta);
}

// 6 x 8 double tile: same register budget as the float kernel; same contract.
template <bool kPacked>
void dgemm_6x8_body(std::int64_t kc, const double* a, std::int64_t rs_a, std::int64_t cs_a,
                    const double* b, double* c, std::int64_t ldc, double alpha, double beta) {
  if (kPacked) {
    rs_a = 1;
    cs_a = 6;
  }
  for (int i = 0; i < 6; ++i) _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
  __m256d c00 = _mm256_setzero_pd(), c01 = _mm256_setzero_pd();
  __m256d c10 = _mm256_setzero_pd(), c11 = _mm256_setzero_pd();
  __m256d c20 = _mm256_setzero_pd(), c21 = _mm256_setzero_pd();
  __m256d c30 = _mm256_setzero_pd(), c31 = _mm256_setzero_pd();
  __m256d c40 = _mm256_setzero_pd(), c41 = _mm256_setzero_pd();
  __m256d c50 = _mm256_setzero_pd(), c51 = _mm256_setzero_pd();
#pragma GCC unroll 4
  for (std::int64_t k = 0; k < kc; ++k) {
    const double* ak = a + k * cs_a;
    const __m256d b0 = _mm256_loadu_pd(b);
    const __m256d b1 = _mm256_loadu_pd(b + 4);
    __m256d ai = _mm256_broadcast_sd(ak);
    c00 = _mm256_fmadd_pd(ai, b0, c00);
    c01 = _mm256_fmadd_pd(ai, b1, c01);
    ai = _mm256_broadcast_sd(ak + rs_a);
    c10 = _mm256_fmadd_pd(ai, b0, c10);
    c11 = _mm256_fmadd_pd(ai, b1, c11);
    ai = _mm256_broadcast_sd(ak + 2 * rs_a);
    c20 = _mm256_fmadd_pd(ai, b0, c20);
    c21 = _mm256_fmadd_pd(ai, b1, c21);
    ai = _mm256_broadcast_sd(ak + 3 * rs_a);
    c30 = _mm256_fmadd_pd(ai, b0, c30);
    c31 = _mm256_fmadd_pd(ai, b1, c31);
    ai = _mm256_broadcast_sd(ak + 4 * rs_a);
    c40 = _mm256_fmadd_pd(ai, b0, c40);
    c41 = _mm256_fmadd_pd(ai, b1, c41);
    ai = _mm256_broadcast_sd(ak + 5 * rs_a);
    c50 = _mm256_fmadd_pd(ai, b0, c50);
    c51 = _mm256_fmadd_pd(ai, b1, c51);
    b += 8;
  }
  epilogue<6>(alpha, beta, c, ldc, c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51);
}

void dgemm_6x8(std::int64_t kc, const double* a, const double* b, double* c, std::int64_t ldc,
               double alpha, double beta) {
  dgemm_6x8_body<true>(kc, a, 1, 6, b, c, ldc, alpha, beta);
}

void dgemm_6x8_ga(std::int64_t kc, const double* a, std::int64_t rs_a, std::int64_t cs_a,
                  const double* b, double* c, std::int64_t ldc, double alpha, double beta) {
  dgemm_6x8_body<false>(kc, a, rs_a, cs_a, b, c, ldc, alpha, beta);
}

// In-register transpose of an 8 x 8 float block: r[q][i] <- r[i][q].
inline void transpose8(__m256 r[8]) {
  const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
  const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
  const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
  const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
  const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
  const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
  const __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
  const __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  r[0] = _mm256_permute2f128_ps(u0, u4, 0x20);
  r[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
  r[2] = _mm256_permute2f128_ps(u2, u6, 0x20);
  r[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
  r[4] = _mm256_permute2f128_ps(u0, u4, 0x31);
  r[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
  r[6] = _mm256_permute2f128_ps(u2, u6, 0x31);
  r[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
}

// Stores exactly 6 floats of v at dst.
inline void store6(float* dst, __m256 v) {
  _mm_storeu_ps(dst, _mm256_castps256_ps128(v));
  _mm_storel_pi(reinterpret_cast<__m64*>(dst + 4), _mm256_extractf128_ps(v, 1));
}

// Full 6-row float panels; partial panels go to the portable packer.
void spack_a_6(bool trans, const float* A, std::int64_t lda, std::int64_t i0,
               std::int64_t mr_valid, std::int64_t p0, std::int64_t kc, float* dst) {
  if (mr_valid != 6) {
    pack_a_generic_f32_mr6(trans, A, lda, i0, mr_valid, p0, kc, dst);
    return;
  }
  std::int64_t p = 0;
  if (!trans) {  // rows contiguous in p: transpose 6 x 8 blocks
    const float* rows[6];
    for (int i = 0; i < 6; ++i) rows[i] = A + (i0 + i) * lda + p0;
    for (; p + 8 <= kc; p += 8) {
      __m256 r[8];
      for (int i = 0; i < 6; ++i) r[i] = _mm256_loadu_ps(rows[i] + p);
      r[6] = _mm256_setzero_ps();
      r[7] = _mm256_setzero_ps();
      transpose8(r);
      for (int q = 0; q < 8; ++q) store6(dst + (p + q) * 6, r[q]);
    }
    for (; p < kc; ++p)
      for (int i = 0; i < 6; ++i) dst[p * 6 + i] = rows[i][p];
  } else {  // op(A) columns contiguous in i: copy 6 per p
    for (; p < kc; ++p) {
      const float* src = A + (p0 + p) * lda + i0;
      _mm_storeu_ps(dst + p * 6, _mm_loadu_ps(src));
      dst[p * 6 + 4] = src[4];
      dst[p * 6 + 5] = src[5];
    }
  }
}

void spack_b_16(bool trans, const float* B, std::int64_t ldb, std::int64_t j0,
                std::int64_t nr_valid, std::int64_t p0, std::int64_t kc, float* dst) {
  if (nr_valid != 16) {
    pack_b_generic_f32_nr16(trans, B, ldb, j0, nr_valid, p0, kc, dst);
    return;
  }
  std::int64_t p = 0;
  if (!trans) {  // rows of op(B) contiguous in j: copy 16 per p
    const float* src = B + p0 * ldb + j0;
    for (; p < kc; ++p, src += ldb) {
      _mm256_storeu_ps(dst + p * 16, _mm256_loadu_ps(src));
      _mm256_storeu_ps(dst + p * 16 + 8, _mm256_loadu_ps(src + 8));
    }
  } else {  // columns of op(B) contiguous in p: transpose two 8 x 8 blocks per 8 p
    const float* cols = B + j0 * ldb + p0;
    for (; p + 8 <= kc; p += 8) {
      for (int half = 0; half < 2; ++half) {
        __m256 r[8];
        for (int j = 0; j < 8; ++j) r[j] = _mm256_loadu_ps(cols + (half * 8 + j) * ldb + p);
        transpose8(r);
        for (int q = 0; q < 8; ++q) _mm256_storeu_ps(dst + (p + q) * 16 + half * 8, r[q]);
      }
    }
    for (; p < kc; ++p)
      for (int j = 0; j < 16; ++j) dst[p * 16 + j] = cols[j * ldb + p];
  }
}

// A full 6 x 16 tile (row stride 16) stored transposed: 16 runs of 6 floats.
void sstore_t_6x16(const float* tile, float* c, std::int64_t ldc, float beta) {
  for (int half = 0; half < 2; ++half) {
    __m256 r[8];
    for (int i = 0; i < 6; ++i) r[i] = _mm256_loadu_ps(tile + i * 16 + half * 8);
    r[6] = _mm256_setzero_ps();
    r[7] = _mm256_setzero_ps();
    transpose8(r);
    for (int q = 0; q < 8; ++q) {
      float* cj = c + (half * 8 + q) * ldc;
      __m256 v = r[q];
      if (beta != 0.0f) {
        // Load exactly 6 floats (no read past the run): 4 + 2.
        const __m128 lo = _mm_loadu_ps(cj);
        // (loadl_pi, a builtin: _mm_load_sd dereferences a double*, which
        // UBSan rightly flags as misaligned here.)
        const __m128 hi = _mm_loadl_pi(_mm_setzero_ps(), reinterpret_cast<const __m64*>(cj + 4));
        const __m256 old = _mm256_insertf128_ps(_mm256_castps128_ps256(lo), hi, 1);
        v = _mm256_fmadd_ps(_mm256_set1_ps(beta), old, v);
      }
      store6(cj, v);
    }
  }
}

}  // namespace

KernelTable avx2_kernels() {
  KernelTable t;
  t.sgemm = &sgemm_6x16;
  t.s = Blocking{6, 16, 144, 256, 3072};
  t.spack_a = &spack_a_6;
  t.spack_b = &spack_b_16;
  t.sgemm_ga = &sgemm_rx16_ga<6>;
  t.sgemm_ga_rows[0] = &sgemm_rx16_ga<1>;
  t.sgemm_ga_rows[1] = &sgemm_rx16_ga<2>;
  t.sgemm_ga_rows[2] = &sgemm_rx16_ga<3>;
  t.sgemm_ga_rows[3] = &sgemm_rx16_ga<4>;
  t.sgemm_ga_rows[4] = &sgemm_rx16_ga<5>;
  t.sgemm_ga_rows[5] = &sgemm_rx16_ga<6>;
  for (auto& f : t.sgemm_ga_cols) f = nullptr;
  t.sstore_t = &sstore_t_6x16;
  t.dgemm = &dgemm_6x8;
  t.d = Blocking{6, 8, 96, 256, 2048};
  t.dpack_a = &pack_a_generic_f64_mr6;
  t.dpack_b = &pack_b_generic_f64_nr8;
  t.dgemm_ga = &dgemm_6x8_ga;
  for (auto& f : t.dgemm_ga_rows) f = nullptr;
  for (auto& f : t.dgemm_ga_cols) f = nullptr;
  // Measured on Zen 3 (bench/compare.py gemm): 64 beats 0 and 256 on the
  // training shapes, and 128 when the operand read in place runs along K.
  t.skinny_max = 64;
  t.skinny_contiguous_max = 128;
  t.small_rows = 0;
  t.small_max = 0;
  t.small_k = 0;
  t.small_mn = 0;
  for (auto& f : t.sgemm_small) f = nullptr;
  for (auto& f : t.dgemm_small) f = nullptr;
  return t;
}

}  // namespace gemm_detail
}  // namespace neuropil

namespace neuropil {
namespace gemm_detail {

// FMA-loop peak probe: 12 independent float FMA chains, 8 lanes each, so the
// loop is bound by FMA throughput alone. Returns the number of flops done.
double fma_loop_avx2(std::int64_t iters) {
  __m256 x[12];
  const __m256 m = _mm256_set1_ps(0.999999f), a = _mm256_set1_ps(1e-7f);
  for (int i = 0; i < 12; ++i) x[i] = _mm256_set1_ps(static_cast<float>(i));
  for (std::int64_t it = 0; it < iters; ++it) {
#pragma GCC unroll 12
    for (int i = 0; i < 12; ++i) x[i] = _mm256_fmadd_ps(x[i], m, a);
  }
  __m256 s = x[0];
  for (int i = 1; i < 12; ++i) s = _mm256_add_ps(s, x[i]);
  float out[8];
  _mm256_storeu_ps(out, s);
  volatile float sink = out[0];
  (void)sink;
  return 2.0 * 8 * 12 * static_cast<double>(iters);
}

}  // namespace gemm_detail
}  // namespace neuropil
