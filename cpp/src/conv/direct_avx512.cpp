// AVX-512F build of the direct-convolution tiles (direct_kernels.inc): 16
// lanes, up to 28 zmm accumulators. The only translation unit of conv built
// with -mavx512f; internal linkage except avx512_direct_kernels(), called
// only after CPU detection confirmed AVX-512F.
#include <immintrin.h>

#include <algorithm>

#include "direct.h"

namespace neuropil {
namespace conv_detail {
namespace {

constexpr int L = 16;
constexpr int kVregs = 32;
constexpr int kMaxAcc = 28;
using vec = __m512;
inline vec vzero() { return _mm512_setzero_ps(); }
inline vec vload(const float* p) { return _mm512_loadu_ps(p); }
inline vec vbcast(const float* p) { return _mm512_set1_ps(*p); }
inline vec vfma(vec a, vec b, vec c) { return _mm512_fmadd_ps(a, b, c); }
inline vec vadd(vec a, vec b) { return _mm512_add_ps(a, b); }
inline void vstore(float* p, vec v) { _mm512_storeu_ps(p, v); }

// In-register transpose of a 16 x 16 block (r[i] = row i -> r[j] = column j).
inline void transpose16(__m512* r) {
  __m512 t[16], u[16];
#pragma GCC unroll 8
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  // u[4i + j], 128-bit lane k: column 4k + j of rows 4i .. 4i + 3
#pragma GCC unroll 4
  for (int i = 0; i < 4; ++i) {
    u[4 * i + 0] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], _MM_SHUFFLE(1, 0, 1, 0));
    u[4 * i + 1] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], _MM_SHUFFLE(3, 2, 3, 2));
    u[4 * i + 2] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], _MM_SHUFFLE(1, 0, 1, 0));
    u[4 * i + 3] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], _MM_SHUFFLE(3, 2, 3, 2));
  }
#pragma GCC unroll 4
  for (int j = 0; j < 4; ++j) {
    const __m512 p01 = _mm512_shuffle_f32x4(u[j], u[4 + j], 0x44);
    const __m512 p23 = _mm512_shuffle_f32x4(u[j], u[4 + j], 0xEE);
    const __m512 q01 = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], 0x44);
    const __m512 q23 = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], 0xEE);
    r[j] = _mm512_shuffle_f32x4(p01, q01, 0x88);
    r[4 + j] = _mm512_shuffle_f32x4(p01, q01, 0xDD);
    r[8 + j] = _mm512_shuffle_f32x4(p23, q23, 0x88);
    r[12 + j] = _mm512_shuffle_f32x4(p23, q23, 0xDD);
  }
}

inline __mmask16 first_n(index_t n) {
  return n >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1u);
}

void transpose(const float* src, index_t lds, index_t rows, index_t cols, float* dst,
               index_t ldd) {
  for (index_t r0 = 0; r0 < rows; r0 += 16) {
    const index_t nr = std::min<index_t>(16, rows - r0);
    const __mmask16 mrow = first_n(nr);
    for (index_t c0 = 0; c0 < cols; c0 += 16) {
      const index_t nc = std::min<index_t>(16, cols - c0);
      __m512 v[16];
      if (nr == 16 && nc == 16) {
#pragma GCC unroll 16
        for (int i = 0; i < 16; ++i) v[i] = _mm512_loadu_ps(src + (r0 + i) * lds + c0);
        transpose16(v);
#pragma GCC unroll 16
        for (int j = 0; j < 16; ++j) _mm512_storeu_ps(dst + (c0 + j) * ldd + r0, v[j]);
        continue;
      }
      const __mmask16 mcol = first_n(nc);
#pragma GCC unroll 16
      for (int i = 0; i < 16; ++i)
        v[i] = i < nr ? _mm512_maskz_loadu_ps(mcol, src + (r0 + i) * lds + c0)
                      : _mm512_setzero_ps();
      transpose16(v);
#pragma GCC unroll 16
      for (int j = 0; j < 16; ++j)
        if (j < nc) _mm512_mask_storeu_ps(dst + (c0 + j) * ldd + r0, mrow, v[j]);
    }
  }
}

// dst [C][Hp][Wp] = src [C][H][W] shifted by (top, left), zeros elsewhere
// (pad_fn of direct.h): each plane zeroed with full vectors, then each
// source row segment copied with a masked tail.
void pad(const float* src, index_t C, index_t H, index_t W, index_t top, index_t left,
         index_t Hp, index_t Wp, float* dst) {
  const index_t s0 = std::max<index_t>(0, -left), s1 = std::min<index_t>(W, Wp - left);
  const index_t r0 = std::max<index_t>(0, top), r1 = std::min<index_t>(Hp, H + top);
  const index_t n = s1 - s0, plane = Hp * Wp;
  const __m512 z = _mm512_setzero_ps();
  for (index_t c = 0; c < C; ++c) {
    float* dc = dst + c * plane;
    index_t i = 0;
    for (; i + 16 <= plane; i += 16) _mm512_storeu_ps(dc + i, z);
    if (i < plane) _mm512_mask_storeu_ps(dc + i, first_n(plane - i), z);
    if (n <= 0) continue;
    const float* sc = src + c * H * W + s0;
    for (index_t r = r0; r < r1; ++r) {
      const float* sr = sc + (r - top) * W;
      float* d = dc + r * Wp + s0 + left;
      index_t j = 0;
      for (; j + 16 <= n; j += 16) _mm512_storeu_ps(d + j, _mm512_loadu_ps(sr + j));
      if (j < n) {
        const __mmask16 m = first_n(n - j);
        _mm512_mask_storeu_ps(d + j, m, _mm512_maskz_loadu_ps(m, sr + j));
      }
    }
  }
}

void copy_rows(const float* src, index_t lds, index_t rows, index_t cols, float* dst,
               index_t ldd) {
  for (index_t r = 0; r < rows; ++r) {
    const float* s = src + r * lds;
    float* d = dst + r * ldd;
    index_t j = 0;
    for (; j + 16 <= cols; j += 16) _mm512_storeu_ps(d + j, _mm512_loadu_ps(s + j));
    if (j < cols) {
      const __mmask16 m = first_n(cols - j);
      _mm512_mask_storeu_ps(d + j, m, _mm512_maskz_loadu_ps(m, s + j));
    }
  }
}

#include "direct_kernels.inc"

}  // namespace

DirectKernels avx512_direct_kernels() { return make_table(); }

}  // namespace conv_detail
}  // namespace neuropil
