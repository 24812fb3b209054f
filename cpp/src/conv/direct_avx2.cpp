// AVX2+FMA build of the direct-convolution tiles (direct_kernels.inc): 8
// lanes, up to 12 ymm accumulators. Built with -mavx2 -mfma; internal
// linkage except avx2_direct_kernels(), called only after CPU detection
// confirmed AVX2 and FMA.
#include <immintrin.h>

#include <algorithm>

#include "direct.h"

namespace neuropil {
namespace conv_detail {
namespace {

constexpr int L = 8;
constexpr int kVregs = 16;
constexpr int kMaxAcc = 12;
using vec = __m256;
inline vec vzero() { return _mm256_setzero_ps(); }
inline vec vload(const float* p) { return _mm256_loadu_ps(p); }
inline vec vbcast(const float* p) { return _mm256_broadcast_ss(p); }
inline vec vfma(vec a, vec b, vec c) { return _mm256_fmadd_ps(a, b, c); }
inline vec vadd(vec a, vec b) { return _mm256_add_ps(a, b); }
inline void vstore(float* p, vec v) { _mm256_storeu_ps(p, v); }

// In-register transpose of an 8 x 8 block (r[i] = row i -> r[j] = column j).
inline void transpose8(__m256* r) {
  __m256 t[8], u[8];
#pragma GCC unroll 4
  for (int i = 0; i < 4; ++i) {
    t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
#pragma GCC unroll 2
  for (int i = 0; i < 2; ++i) {
    u[4 * i + 0] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], _MM_SHUFFLE(1, 0, 1, 0));
    u[4 * i + 1] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], _MM_SHUFFLE(3, 2, 3, 2));
    u[4 * i + 2] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], _MM_SHUFFLE(1, 0, 1, 0));
    u[4 * i + 3] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], _MM_SHUFFLE(3, 2, 3, 2));
  }
#pragma GCC unroll 4
  for (int j = 0; j < 4; ++j) {
    r[j] = _mm256_permute2f128_ps(u[j], u[4 + j], 0x20);
    r[4 + j] = _mm256_permute2f128_ps(u[j], u[4 + j], 0x31);
  }
}

void transpose(const float* src, index_t lds, index_t rows, index_t cols, float* dst,
               index_t ldd) {
  for (index_t r0 = 0; r0 < rows; r0 += 8) {
    const index_t nr = std::min<index_t>(8, rows - r0);
    for (index_t c0 = 0; c0 < cols; c0 += 8) {
      const index_t nc = std::min<index_t>(8, cols - c0);
      __m256 v[8];
      if (nr == 8 && nc == 8) {
#pragma GCC unroll 8
        for (int i = 0; i < 8; ++i) v[i] = _mm256_loadu_ps(src + (r0 + i) * lds + c0);
        transpose8(v);
#pragma GCC unroll 8
        for (int j = 0; j < 8; ++j) _mm256_storeu_ps(dst + (c0 + j) * ldd + r0, v[j]);
        continue;
      }
      // Edge block: scalar (at most 8 x 8 elements).
      for (index_t i = 0; i < nr; ++i)
        for (index_t j = 0; j < nc; ++j) dst[(c0 + j) * ldd + r0 + i] = src[(r0 + i) * lds + c0 + j];
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
  const __m256 z = _mm256_setzero_ps();
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  for (index_t c = 0; c < C; ++c) {
    float* dc = dst + c * plane;
    index_t i = 0;
    for (; i + 8 <= plane; i += 8) _mm256_storeu_ps(dc + i, z);
    for (; i < plane; ++i) dc[i] = 0.0f;
    if (n <= 0) continue;
    const float* sc = src + c * H * W + s0;
    for (index_t r = r0; r < r1; ++r) {
      const float* sr = sc + (r - top) * W;
      float* d = dc + r * Wp + s0 + left;
      index_t j = 0;
      for (; j + 8 <= n; j += 8) _mm256_storeu_ps(d + j, _mm256_loadu_ps(sr + j));
      if (j < n) {
        const __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32(int(n - j)), lane);
        _mm256_maskstore_ps(d + j, m, _mm256_maskload_ps(sr + j, m));
      }
    }
  }
}

void copy_rows(const float* src, index_t lds, index_t rows, index_t cols, float* dst,
               index_t ldd) {
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  for (index_t r = 0; r < rows; ++r) {
    const float* s = src + r * lds;
    float* d = dst + r * ldd;
    index_t j = 0;
    for (; j + 8 <= cols; j += 8) _mm256_storeu_ps(d + j, _mm256_loadu_ps(s + j));
    if (j < cols) {
      const __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32(int(cols - j)), lane);
      _mm256_maskstore_ps(d + j, m, _mm256_maskload_ps(s + j, m));
    }
  }
}

#include "direct_kernels.inc"

}  // namespace

DirectKernels avx2_direct_kernels() { return make_table(); }

}  // namespace conv_detail
}  // namespace neuropil
