// AVX-512F GEMM micro-kernels: float 6 x 32 and double 6 x 16 (12 zmm
// accumulators each), their in-place-A, row-count and masked partial-panel
// variants, B packing and the transposed tile store. The only translation
// unit built with -mavx512f; everything in it has internal linkage except
// avx512_kernels() and fma_loop_avx512(), called only after CPU detection
// confirmed AVX-512F. Float A packing stays the AVX2 table's (every AVX-512
// CPU runs AVX2; a 6-row panel is a 256-bit transpose).
#include <immintrin.h>

#include "kernels.h"

namespace neuropil {
namespace gemm_detail {
namespace {

// One zmm register of T and the operations the kernels need on it.
template <typename T>
struct Vec;
template <>
struct Vec<float> {
  using reg = __m512;
  using mask = __mmask16;
  static constexpr int w = 16;
  static reg zero() { return _mm512_setzero_ps(); }
  static reg set1(float x) { return _mm512_set1_ps(x); }
  static reg load(const float* p) { return _mm512_loadu_ps(p); }
  static reg maskz_load(mask m, const float* p) { return _mm512_maskz_loadu_ps(m, p); }
  static void store(float* p, reg v) { _mm512_storeu_ps(p, v); }
  static void mask_store(float* p, mask m, reg v) { _mm512_mask_storeu_ps(p, m, v); }
  static reg fmadd(reg a, reg b, reg c) { return _mm512_fmadd_ps(a, b, c); }
  static reg mul(reg a, reg b) { return _mm512_mul_ps(a, b); }
  static reg add(reg a, reg b) { return _mm512_add_ps(a, b); }
  static mask first(int n) { return n >= 16 ? mask(0xFFFF) : mask((1u << n) - 1u); }
};
template <>
struct Vec<double> {
  using reg = __m512d;
  using mask = __mmask8;
  static constexpr int w = 8;
  static reg zero() { return _mm512_setzero_pd(); }
  static reg set1(double x) { return _mm512_set1_pd(x); }
  static reg load(const double* p) { return _mm512_loadu_pd(p); }
  static reg maskz_load(mask m, const double* p) { return _mm512_maskz_loadu_pd(m, p); }
  static void store(double* p, reg v) { _mm512_storeu_pd(p, v); }
  static void mask_store(double* p, mask m, reg v) { _mm512_mask_storeu_pd(p, m, v); }
  static reg fmadd(reg a, reg b, reg c) { return _mm512_fmadd_pd(a, b, c); }
  static reg mul(reg a, reg b) { return _mm512_mul_pd(a, b); }
  static reg add(reg a, reg b) { return _mm512_add_pd(a, b); }
  static mask first(int n) { return n >= 8 ? mask(0xFF) : mask((1u << n) - 1u); }
};

// Epilogue of R rows held in x[r][0..NV): x = alpha * x (beta 0: C never
// read) or alpha * x + beta * c, stored to the first n_valid columns of each
// row (all 2w when !kMasked). Every load of C comes before the first store:
// with ldc a multiple of 1024 floats the rows share their low 12 address
// bits, and a load issued after a store to another row waits on it (4K
// aliasing; the AVX2 kernels measured 2-5% on 1024^2 from this order).
template <typename T, int R, int NV, bool kMasked, int RMAX>
inline void epilogue(typename Vec<T>::reg (&x)[RMAX][2], T alpha, T beta, T* c, std::int64_t ldc,
                     int n_valid) {
  using V = Vec<T>;
  constexpr int w = V::w;
  const typename V::mask m0 = kMasked ? V::first(n_valid) : V::first(w);
  const typename V::mask m1 = kMasked ? V::first(n_valid > w ? n_valid - w : 0) : V::first(w);
  const typename V::reg va = V::set1(alpha);
  if (beta == T(0)) {
#pragma GCC unroll 12
    for (int i = 0; i < R; ++i)
#pragma GCC unroll 2
      for (int h = 0; h < NV; ++h) x[i][h] = V::mul(va, x[i][h]);
  } else {
    const typename V::reg vb = V::set1(beta);
#pragma GCC unroll 12
    for (int i = 0; i < R; ++i)
#pragma GCC unroll 2
      for (int h = 0; h < NV; ++h) {
        const T* ci = c + i * ldc + h * w;
        const typename V::reg old = kMasked ? V::maskz_load(h ? m1 : m0, ci) : V::load(ci);
        x[i][h] = V::fmadd(vb, old, V::mul(va, x[i][h]));
      }
  }
#pragma GCC unroll 12
  for (int i = 0; i < R; ++i)
#pragma GCC unroll 2
    for (int h = 0; h < NV; ++h) {
      T* ci = c + i * ldc + h * w;
      if (kMasked)
        V::mask_store(ci, h ? m1 : m0, x[i][h]);
      else
        V::store(ci, x[i][h]);
    }
}

// Up to 6 x 2w tile (w = lanes of T): a(i, k) = a[i * rs_a + k * cs_a], with
// kPacked fixing rs_a = 1, cs_a = 6 at compile time; b: packed panel of 2w
// columns per k. R < 6 computes and stores only the first R rows. kMasked
// stores only the first n_valid columns (C past them is never touched).
template <typename T, bool kPacked, int R, bool kMasked>
void body_wide(std::int64_t kc, const T* a, std::int64_t rs_a, std::int64_t cs_a, const T* b,
               T* c, std::int64_t ldc, T alpha, T beta, int n_valid) {
  static_assert(R >= 1 && R <= 6, "1 to 6 rows");
  using V = Vec<T>;
  constexpr int w = V::w;
  if (kPacked) {
    rs_a = 1;
    cs_a = 6;
  }
  for (int i = 0; i < R; ++i) {
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + 2 * w - 1), _MM_HINT_T0);
  }
  const T* ar[6];
  for (int i = 0; i < 6; ++i) ar[i] = a + i * rs_a;
  typename V::reg x[6][2];
#pragma GCC unroll 6
  for (int i = 0; i < 6; ++i) x[i][0] = x[i][1] = V::zero();
#pragma GCC unroll 4
  for (std::int64_t k = 0; k < kc; ++k) {
    const std::int64_t o = k * cs_a;
    if (kPacked) _mm_prefetch(reinterpret_cast<const char*>(ar[0] + o + 16 * 6), _MM_HINT_T0);
    const typename V::reg b0 = V::load(b);
    const typename V::reg b1 = V::load(b + w);
#pragma GCC unroll 6
    for (int i = 0; i < R; ++i) {
      const typename V::reg ai = V::set1(ar[i][o]);
      x[i][0] = V::fmadd(ai, b0, x[i][0]);
      x[i][1] = V::fmadd(ai, b1, x[i][1]);
    }
    b += 2 * w;
  }
  epilogue<T, R, 2, kMasked>(x, alpha, beta, c, ldc, n_valid);
}

// Up to 6 x w tile: the first w columns of a 2w-wide packed panel (a partial
// last panel of at most w valid columns, such as a classifier head's 10).
// One vector per row gives only R FMA chains, too few to cover the FMA
// latency, so even and odd k accumulate apart and are added at the end.
template <typename T, int R>
void body_narrow(std::int64_t kc, const T* a, std::int64_t rs_a, std::int64_t cs_a, const T* b,
                 T* c, std::int64_t ldc, T alpha, T beta, int n_valid) {
  static_assert(R >= 1 && R <= 6, "1 to 6 rows");
  using V = Vec<T>;
  constexpr int w = V::w;
  for (int i = 0; i < R; ++i) _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
  const T* ar[6];
  for (int i = 0; i < 6; ++i) ar[i] = a + i * rs_a;
  typename V::reg x[6][2];
#pragma GCC unroll 6
  for (int i = 0; i < 6; ++i) x[i][0] = x[i][1] = V::zero();
  std::int64_t k = 0;
#pragma GCC unroll 2
  for (; k + 1 < kc; k += 2) {
    const std::int64_t o = k * cs_a;
    const typename V::reg b0 = V::load(b);
    const typename V::reg b1 = V::load(b + 2 * w);
#pragma GCC unroll 6
    for (int i = 0; i < R; ++i) {
      x[i][0] = V::fmadd(V::set1(ar[i][o]), b0, x[i][0]);
      x[i][1] = V::fmadd(V::set1(ar[i][o + cs_a]), b1, x[i][1]);
    }
    b += 4 * w;
  }
  if (k < kc) {
    const std::int64_t o = k * cs_a;
    const typename V::reg b0 = V::load(b);
#pragma GCC unroll 6
    for (int i = 0; i < R; ++i) x[i][0] = V::fmadd(V::set1(ar[i][o]), b0, x[i][0]);
  }
#pragma GCC unroll 6
  for (int i = 0; i < R; ++i) x[i][0] = V::add(x[i][0], x[i][1]);
  epilogue<T, R, 1, true>(x, alpha, beta, c, ldc, n_valid);
}

template <typename T>
void ukr_packed(std::int64_t kc, const T* a, const T* b, T* c, std::int64_t ldc, T alpha,
                T beta) {
  body_wide<T, true, 6, false>(kc, a, 1, 6, b, c, ldc, alpha, beta, 2 * Vec<T>::w);
}

template <typename T, int R>
void ukr_rows(std::int64_t kc, const T* a, std::int64_t rs_a, std::int64_t cs_a, const T* b, T* c,
              std::int64_t ldc, T alpha, T beta) {
  body_wide<T, false, R, false>(kc, a, rs_a, cs_a, b, c, ldc, alpha, beta, 2 * Vec<T>::w);
}

template <typename T, int R>
void ukr_cols(std::int64_t kc, const T* a, std::int64_t rs_a, std::int64_t cs_a, const T* b, T* c,
              std::int64_t ldc, T alpha, T beta, int n_valid, bool split_k) {
  if (split_k && n_valid <= Vec<T>::w)
    body_narrow<T, R>(kc, a, rs_a, cs_a, b, c, ldc, alpha, beta, n_valid);
  else
    body_wide<T, false, R, true>(kc, a, rs_a, cs_a, b, c, ldc, alpha, beta, n_valid);
}

// In-register transposes: r[q] <- column q of the block held in r.
// (GCC 12 flags the self-initialised placeholder inside its own AVX-512
// unpack/shuffle intrinsics as uninitialised, GCC bug 105593.)
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
inline void transpose16(__m512 r[16]) {
  __m512 t[16], u[16];
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 4; ++i) {
    u[4 * i] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], _MM_SHUFFLE(1, 0, 1, 0));
    u[4 * i + 1] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], _MM_SHUFFLE(3, 2, 3, 2));
    u[4 * i + 2] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], _MM_SHUFFLE(1, 0, 1, 0));
    u[4 * i + 3] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], _MM_SHUFFLE(3, 2, 3, 2));
  }
  // u[4i + q] holds, in each 128-bit lane l, column 4l + q of rows 4i..4i+3.
  for (int q = 0; q < 4; ++q) {
    t[q] = _mm512_shuffle_f32x4(u[q], u[4 + q], 0x88);       // lanes 0, 2 of rows 0-7
    t[4 + q] = _mm512_shuffle_f32x4(u[q], u[4 + q], 0xDD);   // lanes 1, 3
    t[8 + q] = _mm512_shuffle_f32x4(u[8 + q], u[12 + q], 0x88);
    t[12 + q] = _mm512_shuffle_f32x4(u[8 + q], u[12 + q], 0xDD);
  }
  for (int q = 0; q < 4; ++q) {
    r[q] = _mm512_shuffle_f32x4(t[q], t[8 + q], 0x88);        // columns q
    r[8 + q] = _mm512_shuffle_f32x4(t[q], t[8 + q], 0xDD);    // 8 + q
    r[4 + q] = _mm512_shuffle_f32x4(t[4 + q], t[12 + q], 0x88);   // 4 + q
    r[12 + q] = _mm512_shuffle_f32x4(t[4 + q], t[12 + q], 0xDD);  // 12 + q
  }
}

inline void transpose8(__m512d r[8]) {
  __m512d t[8], u[8];
  for (int i = 0; i < 4; ++i) {
    t[2 * i] = _mm512_unpacklo_pd(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_pd(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 2; ++i) {
    u[4 * i] = _mm512_shuffle_f64x2(t[4 * i], t[4 * i + 2], 0x88);      // cols 0, 4
    u[4 * i + 1] = _mm512_shuffle_f64x2(t[4 * i], t[4 * i + 2], 0xDD);  // cols 2, 6
    u[4 * i + 2] = _mm512_shuffle_f64x2(t[4 * i + 1], t[4 * i + 3], 0x88);  // cols 1, 5
    u[4 * i + 3] = _mm512_shuffle_f64x2(t[4 * i + 1], t[4 * i + 3], 0xDD);  // cols 3, 7
  }
  r[0] = _mm512_shuffle_f64x2(u[0], u[4], 0x88);
  r[4] = _mm512_shuffle_f64x2(u[0], u[4], 0xDD);
  r[2] = _mm512_shuffle_f64x2(u[1], u[5], 0x88);
  r[6] = _mm512_shuffle_f64x2(u[1], u[5], 0xDD);
  r[1] = _mm512_shuffle_f64x2(u[2], u[6], 0x88);
  r[5] = _mm512_shuffle_f64x2(u[2], u[6], 0xDD);
  r[3] = _mm512_shuffle_f64x2(u[3], u[7], 0x88);
  r[7] = _mm512_shuffle_f64x2(u[3], u[7], 0xDD);
}

inline void transpose(__m512 r[16]) { transpose16(r); }
inline void transpose(__m512d r[8]) { transpose8(r); }
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

// Few-row products, both operands read in place (see kernels.h): R <= 12
// rows of op(A) times a column block of B (row k at b + k * ldb), NV
// vectors wide: 2w columns with 2R accumulators (24 of the 32 zmm at R =
// 12), or w columns (a block at most half full) with even and odd k
// accumulated apart, as in body_narrow. kMasked: only n_valid columns are
// loaded from B (zeros past them) and stored. With c_trans the result is
// stored transposed, c[j * ldc + i], through w x w register transposes and
// R-lane masked stores.
template <typename T, int R, int NV, bool kMasked>
void small_body(std::int64_t kc, const T* a, std::int64_t rs_a, std::int64_t cs_a, const T* b,
                std::int64_t ldb, T* c, std::int64_t ldc, T alpha, T beta, int n_valid,
                bool c_trans) {
  static_assert(R >= 1 && R <= 12, "1 to 12 rows");
  using V = Vec<T>;
  constexpr int w = V::w;
  const typename V::mask m0 = kMasked ? V::first(n_valid) : V::first(w);
  const typename V::mask m1 = kMasked ? V::first(n_valid > w ? n_valid - w : 0) : V::first(w);
  const T* ar[12];
  for (int i = 0; i < 12; ++i) ar[i] = a + i * rs_a;
  typename V::reg x[12][2];
#pragma GCC unroll 12
  for (int i = 0; i < 12; ++i) x[i][0] = x[i][1] = V::zero();
  std::int64_t k = 0;
  if (NV == 2) {
#pragma GCC unroll 2
    for (; k < kc; ++k) {
      const std::int64_t o = k * cs_a;
      const T* bk = b + k * ldb;
      const typename V::reg b0 = kMasked ? V::maskz_load(m0, bk) : V::load(bk);
      const typename V::reg b1 = kMasked ? V::maskz_load(m1, bk + w) : V::load(bk + w);
#pragma GCC unroll 12
      for (int i = 0; i < R; ++i) {
        const typename V::reg ai = V::set1(ar[i][o]);
        x[i][0] = V::fmadd(ai, b0, x[i][0]);
        x[i][1] = V::fmadd(ai, b1, x[i][1]);
      }
    }
  } else {
    for (; k + 1 < kc; k += 2) {
      const std::int64_t o = k * cs_a;
      const T* bk = b + k * ldb;
      const typename V::reg b0 = kMasked ? V::maskz_load(m0, bk) : V::load(bk);
      const typename V::reg b1 = kMasked ? V::maskz_load(m0, bk + ldb) : V::load(bk + ldb);
#pragma GCC unroll 12
      for (int i = 0; i < R; ++i) {
        x[i][0] = V::fmadd(V::set1(ar[i][o]), b0, x[i][0]);
        x[i][1] = V::fmadd(V::set1(ar[i][o + cs_a]), b1, x[i][1]);
      }
    }
    if (k < kc) {
      const std::int64_t o = k * cs_a;
      const typename V::reg b0 = kMasked ? V::maskz_load(m0, b + k * ldb) : V::load(b + k * ldb);
#pragma GCC unroll 12
      for (int i = 0; i < R; ++i) x[i][0] = V::fmadd(V::set1(ar[i][o]), b0, x[i][0]);
    }
#pragma GCC unroll 12
    for (int i = 0; i < R; ++i) x[i][0] = V::add(x[i][0], x[i][1]);
  }
  if (!c_trans) {
    epilogue<T, R, NV, kMasked>(x, alpha, beta, c, ldc, n_valid);
    return;
  }
  const typename V::reg va = V::set1(alpha), vb = V::set1(beta);
  for (int g = 0; g * w < R; ++g) {  // rows [g w, g w + w) of the tile
    const int rows = R - g * w < w ? R - g * w : w;
    const typename V::mask mr = V::first(rows);
    for (int h = 0; h < NV; ++h) {  // columns [h w, h w + w)
      const int cols = n_valid - h * w < w ? n_valid - h * w : w;
      if (cols <= 0) break;
      typename V::reg r[w];
      for (int i = 0; i < w; ++i) r[i] = i < rows ? x[g * w + i][h] : V::zero();
      transpose(r);
      for (int q = 0; q < cols; ++q) {
        T* cq = c + (h * w + q) * ldc + g * w;
        typename V::reg v = V::mul(va, r[q]);
        if (beta != T(0)) v = V::fmadd(vb, V::maskz_load(mr, cq), v);
        V::mask_store(cq, mr, v);
      }
    }
  }
}

template <typename T, int R>
void ukr_small(std::int64_t kc, const T* a, std::int64_t rs_a, std::int64_t cs_a, const T* b,
               std::int64_t ldb, T* c, std::int64_t ldc, T alpha, T beta, int n_valid,
               bool c_trans) {
  constexpr int w = Vec<T>::w;
  if (n_valid == 2 * w)
    small_body<T, R, 2, false>(kc, a, rs_a, cs_a, b, ldb, c, ldc, alpha, beta, n_valid, c_trans);
  else if (n_valid > w)
    small_body<T, R, 2, true>(kc, a, rs_a, cs_a, b, ldb, c, ldc, alpha, beta, n_valid, c_trans);
  else
    small_body<T, R, 1, true>(kc, a, rs_a, cs_a, b, ldb, c, ldc, alpha, beta, n_valid, c_trans);
}

// B panels of 2w columns (see kernels.h). Rows of op(B) (tb == No) are copied
// two vectors per k, a partial panel with masked loads (zero padding);
// columns of op(B) (tb == Yes, contiguous in p) are transposed w x w blocks.
template <typename T>
void pack_b(bool trans, const T* B, std::int64_t ldb, std::int64_t j0, std::int64_t nr_valid,
            std::int64_t p0, std::int64_t kc, T* dst) {
  using V = Vec<T>;
  constexpr int w = V::w, nr = 2 * w;
  if (!trans) {
    const T* src = B + p0 * ldb + j0;
    if (nr_valid == nr) {
      for (std::int64_t p = 0; p < kc; ++p, src += ldb) {
        V::store(dst + p * nr, V::load(src));
        V::store(dst + p * nr + w, V::load(src + w));
      }
    } else {
      const int n = static_cast<int>(nr_valid);
      const typename V::mask m0 = V::first(n), m1 = V::first(n > w ? n - w : 0);
      for (std::int64_t p = 0; p < kc; ++p, src += ldb) {
        V::store(dst + p * nr, V::maskz_load(m0, src));
        V::store(dst + p * nr + w, V::maskz_load(m1, src + w));
      }
    }
    return;
  }
  const T* cols = B + j0 * ldb + p0;  // column j of op(B) at cols + j * ldb
  std::int64_t p = 0;
  if (nr_valid == nr) {
    for (; p + w <= kc; p += w)
      for (int half = 0; half < 2; ++half) {
        typename V::reg r[w];
        for (int j = 0; j < w; ++j) r[j] = V::load(cols + (half * w + j) * ldb + p);
        transpose(r);
        for (int q = 0; q < w; ++q) V::store(dst + (p + q) * nr + half * w, r[q]);
      }
  }
  for (; p < kc; ++p) {
    for (std::int64_t j = 0; j < nr_valid; ++j) dst[p * nr + j] = cols[j * ldb + p];
    for (std::int64_t j = nr_valid; j < nr; ++j) dst[p * nr + j] = T(0);
  }
}

// A full 6 x 32 float tile (row stride 32) stored transposed: 32 runs of 6
// floats, c[j * ldc + i] = tile[i][j] (+ beta * c[j * ldc + i]), written and
// read with 6-lane masks (nothing past a run is touched).
void sstore_t_6x32(const float* tile, float* c, std::int64_t ldc, float beta) {
  const __mmask16 six = 0x3F;
  for (int half = 0; half < 2; ++half) {
    __m512 r[16];
    for (int i = 0; i < 6; ++i) r[i] = _mm512_loadu_ps(tile + i * 32 + half * 16);
    for (int i = 6; i < 16; ++i) r[i] = _mm512_setzero_ps();
    transpose16(r);
    for (int q = 0; q < 16; ++q) {
      float* cj = c + (half * 16 + q) * ldc;
      __m512 v = r[q];
      if (beta != 0.0f)
        v = _mm512_fmadd_ps(_mm512_set1_ps(beta), _mm512_maskz_loadu_ps(six, cj), v);
      _mm512_mask_storeu_ps(cj, six, v);
    }
  }
}

template <typename T, int I, typename F>
void set_small(F (&table)[12]) {
  table[I] = &ukr_small<T, I + 1>;
  if constexpr (I + 1 < 12) set_small<T, I + 1>(table);
}

}  // namespace

KernelTable avx512_kernels() {
  KernelTable t = avx2_kernels();  // float A packing stays AVX2
  t.sgemm = &ukr_packed<float>;
  t.s = Blocking{6, 32, 144, 256, 3072};
  t.spack_b = &pack_b<float>;
  t.sgemm_ga = &ukr_rows<float, 6>;
  t.sgemm_ga_rows[0] = &ukr_rows<float, 1>;
  t.sgemm_ga_rows[1] = &ukr_rows<float, 2>;
  t.sgemm_ga_rows[2] = &ukr_rows<float, 3>;
  t.sgemm_ga_rows[3] = &ukr_rows<float, 4>;
  t.sgemm_ga_rows[4] = &ukr_rows<float, 5>;
  t.sgemm_ga_rows[5] = &ukr_rows<float, 6>;
  t.sgemm_ga_cols[0] = &ukr_cols<float, 1>;
  t.sgemm_ga_cols[1] = &ukr_cols<float, 2>;
  t.sgemm_ga_cols[2] = &ukr_cols<float, 3>;
  t.sgemm_ga_cols[3] = &ukr_cols<float, 4>;
  t.sgemm_ga_cols[4] = &ukr_cols<float, 5>;
  t.sgemm_ga_cols[5] = &ukr_cols<float, 6>;
  t.sstore_t = &sstore_t_6x32;
  t.dgemm = &ukr_packed<double>;
  t.d = Blocking{6, 16, 96, 256, 2048};
  t.dpack_a = &pack_a_generic_f64_mr6;
  t.dpack_b = &pack_b<double>;
  t.dgemm_ga = &ukr_rows<double, 6>;
  t.dgemm_ga_rows[0] = &ukr_rows<double, 1>;
  t.dgemm_ga_rows[1] = &ukr_rows<double, 2>;
  t.dgemm_ga_rows[2] = &ukr_rows<double, 3>;
  t.dgemm_ga_rows[3] = &ukr_rows<double, 4>;
  t.dgemm_ga_rows[4] = &ukr_rows<double, 5>;
  t.dgemm_ga_rows[5] = &ukr_rows<double, 6>;
  t.dgemm_ga_cols[0] = &ukr_cols<double, 1>;
  t.dgemm_ga_cols[1] = &ukr_cols<double, 2>;
  t.dgemm_ga_cols[2] = &ukr_cols<double, 3>;
  t.dgemm_ga_cols[3] = &ukr_cols<double, 4>;
  t.dgemm_ga_cols[4] = &ukr_cols<double, 5>;
  t.dgemm_ga_cols[5] = &ukr_cols<double, 6>;
  set_small<float, 0>(t.sgemm_small);
  set_small<double, 0>(t.dgemm_small);
  // Small products in place (bench/compare.py gemm and same-process A/B on a
  // Sapphire Rapids Xeon, 1 thread): squares 32-256 1.05-1.17x the packed and
  // skinny paths, 32x1024x32 1.8x; K = 512 or C of 4096 x 256 lose (op(B)'s
  // column block no longer stays in L1, or C's strips evict it).
  t.small_rows = 12;
  t.small_max = 256;
  t.small_k = 256;
  t.small_mn = 65536;
  // The skinny bounds measured best as on AVX2 (32 / 64 and 128 / 256 tried).
  t.skinny_max = 64;
  t.skinny_contiguous_max = 128;
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
  float out[16];
  _mm512_storeu_ps(out, s);
  volatile float sink = out[0];
  (void)sink;
  return 2.0 * 16 * 12 * static_cast<double>(iters);
}

}  // namespace gemm_detail
}  // namespace neuropil
