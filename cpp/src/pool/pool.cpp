// Max and average pooling (math and layout in neuropil/pool.h).
#include "neuropil/pool.h"

#include <algorithm>
#include <cmath>
#include <atomic>
#include <type_traits>

#include "neuropil/parallel.h"

#if defined(__SSE2__)
#include <emmintrin.h>  // SSE2 is the x86-64 baseline: no ISA dispatch needed
#endif

namespace neuropil {
namespace {

// Memory-bound: a second thread only pays off on large tensors.
template <typename Fn>
void over_planes(index_t planes, index_t plane_size, const Fn& fn) {
  const int threads = double(planes) * double(plane_size) < 65536.0 ? 1 : get_num_threads();
  parallel_for(planes, threads, [&](index_t b, index_t e) { fn(b, e); });
}

// One output row of a 2x2/stride-2 max pool over input rows r0, r1, four
// outputs at a time with SSE2 compares and blends. Returns how many outputs
// it wrote (a prefix; the caller finishes the row, and any group of four
// holding a NaN, with the scalar code).
inline index_t max_2x2_row_sse(const float* r0, const float* r1, index_t OW, index_t W,
                               std::int64_t base, float* y, std::int64_t* idx) {
#if defined(__SSE2__)
  index_t j = 0;
  alignas(16) std::int32_t kk[4];
  const __m128i k1 = _mm_set1_epi32(1), kW = _mm_set1_epi32(static_cast<std::int32_t>(W)),
                kW1 = _mm_set1_epi32(static_cast<std::int32_t>(W + 1));
  for (; j + 4 <= OW; j += 4) {
    const __m128 a0 = _mm_loadu_ps(r0 + 2 * j), a1 = _mm_loadu_ps(r0 + 2 * j + 4);
    const __m128 b0 = _mm_loadu_ps(r1 + 2 * j), b1 = _mm_loadu_ps(r1 + 2 * j + 4);
    const __m128 v0 = _mm_shuffle_ps(a0, a1, _MM_SHUFFLE(2, 0, 2, 0));
    const __m128 v1 = _mm_shuffle_ps(a0, a1, _MM_SHUFFLE(3, 1, 3, 1));
    const __m128 v2 = _mm_shuffle_ps(b0, b1, _MM_SHUFFLE(2, 0, 2, 0));
    const __m128 v3 = _mm_shuffle_ps(b0, b1, _MM_SHUFFLE(3, 1, 3, 1));
    const __m128 nan = _mm_or_ps(_mm_cmpunord_ps(v0, v1), _mm_cmpunord_ps(v2, v3));
    if (_mm_movemask_ps(nan)) return j;  // scalar code handles NaN in order
    __m128 best = v0;
    __m128i k = _mm_setzero_si128();
    __m128 m = _mm_cmpgt_ps(v1, best);
    best = _mm_or_ps(_mm_and_ps(m, v1), _mm_andnot_ps(m, best));
    k = _mm_or_si128(_mm_and_si128(_mm_castps_si128(m), k1), _mm_andnot_si128(_mm_castps_si128(m), k));
    m = _mm_cmpgt_ps(v2, best);
    best = _mm_or_ps(_mm_and_ps(m, v2), _mm_andnot_ps(m, best));
    k = _mm_or_si128(_mm_and_si128(_mm_castps_si128(m), kW), _mm_andnot_si128(_mm_castps_si128(m), k));
    m = _mm_cmpgt_ps(v3, best);
    best = _mm_or_ps(_mm_and_ps(m, v3), _mm_andnot_ps(m, best));
    k = _mm_or_si128(_mm_and_si128(_mm_castps_si128(m), kW1), _mm_andnot_si128(_mm_castps_si128(m), k));
    _mm_storeu_ps(y + j, best);
    _mm_store_si128(reinterpret_cast<__m128i*>(kk), k);
    for (int l = 0; l < 4; ++l) idx[j + l] = base + 2 * (j + l) + kk[l];
  }
  return j;
#else
  (void)r0; (void)r1; (void)OW; (void)W; (void)base; (void)y; (void)idx;
  return 0;
#endif
}

// 2x2 windows, stride 2, no padding (the common case): same rules, unrolled.
// v replaces best when larger, or when v is the first NaN (best == best
// fails only once best is NaN, which then stays).
template <typename T>
void max_fwd_2x2(const T* x, const PoolGeom& g, T* y, std::int64_t* idx) {
  const index_t OH = g.OH(), OW = g.OW(), W = g.W, HW = g.H * g.W, OHW = OH * OW;
  over_planes(g.N * g.C, g.H * g.W, [&](index_t b, index_t e) {
    for (index_t pl = b; pl < e; ++pl) {
      const T* xp = x + pl * HW;
      T* yp = y + pl * OHW;
      std::int64_t* ip = idx + pl * OHW;
      for (index_t i = 0; i < OH; ++i) {
        const T* r0 = xp + 2 * i * W;
        const T* r1 = r0 + W;
        const std::int64_t base = 2 * i * W;
        index_t j = 0;
        if constexpr (std::is_same<T, float>::value)
          j = max_2x2_row_sse(r0, r1, OW, W, base, yp + i * OW, ip + i * OW);
        for (; j < OW; ++j) {
          // Selects, not branches: on real data the comparisons are
          // unpredictable. NaN (rare) takes a separate, ordered path.
          const T v0 = r0[2 * j], v1 = r0[2 * j + 1], v2 = r1[2 * j], v3 = r1[2 * j + 1];
          T best;
          std::int64_t bi;
          if ((v0 != v0) | (v1 != v1) | (v2 != v2) | (v3 != v3)) {
            const std::int64_t k = v0 != v0 ? 0 : v1 != v1 ? 1 : v2 != v2 ? W : W + 1;
            bi = base + 2 * j + k;
            best = xp[bi];
          } else {
            index_t k = 0;
            best = v0;
            k = v1 > best ? 1 : k;
            best = v1 > best ? v1 : best;
            k = v2 > best ? W : k;
            best = v2 > best ? v2 : best;
            k = v3 > best ? W + 1 : k;
            best = v3 > best ? v3 : best;
            bi = base + 2 * j + k;
          }
          yp[i * OW + j] = best;
          ip[i * OW + j] = bi;
        }
      }
    }
  });
}

template <typename T>
void max_fwd(const T* x, const PoolGeom& g, T* y, std::int64_t* idx) {
  if (g.full_2x2()) {
    max_fwd_2x2(x, g, y, idx);
    return;
  }
  const index_t OH = g.OH(), OW = g.OW(), HW = g.H * g.W, OHW = OH * OW;
  over_planes(g.N * g.C, g.H * g.W, [&](index_t b, index_t e) {
    for (index_t pl = b; pl < e; ++pl) {
      const T* xp = x + pl * HW;
      T* yp = y + pl * OHW;
      std::int64_t* ip = idx + pl * OHW;
      for (index_t i = 0; i < OH; ++i) {
        const index_t h0 = std::max<index_t>(i * g.SH - g.PH, 0);
        const index_t h1 = std::min<index_t>(i * g.SH - g.PH + g.KH, g.H);
        for (index_t j = 0; j < OW; ++j) {
          const index_t w0 = std::max<index_t>(j * g.SW - g.PW, 0);
          const index_t w1 = std::min<index_t>(j * g.SW - g.PW + g.KW, g.W);
          index_t best_i = h0 * g.W + w0;
          T best = xp[best_i];
          bool nan = std::isnan(best);
          for (index_t h = h0; h < h1 && !nan; ++h) {
            const T* r = xp + h * g.W;
            for (index_t w = w0; w < w1; ++w) {
              const T v = r[w];
              if (v > best) {
                best = v;
                best_i = h * g.W + w;
              } else if (std::isnan(v)) {
                best = v;
                best_i = h * g.W + w;
                nan = true;
                break;
              }
            }
          }
          yp[i * OW + j] = best;
          ip[i * OW + j] = best_i;
        }
      }
    }
  });
}

template <typename T>
index_t max_bwd(const T* dy, const std::int64_t* idx, const PoolGeom& g, T* dx) {
  const index_t HW = g.H * g.W, OHW = g.OH() * g.OW();
  // Invalid indices (an integer count: the order of the additions is irrelevant).
  std::atomic<index_t> bad{0};
  if (g.full_2x2()) {
    // Windows tile the image without overlap: rows are zeroed and filled
    // while in L1, instead of a zero pass over dx and a scatter pass.
    const index_t OH = g.OH(), OW = g.OW(), W = g.W;
    over_planes(g.N * g.C, HW, [&](index_t b, index_t e) {
      for (index_t pl = b; pl < e; ++pl) {
        T* dp = dx + pl * HW;
        const T* gp = dy + pl * OHW;
        const std::int64_t* ip = idx + pl * OHW;
        for (index_t i = 0; i < OH; ++i) {
          T* r0 = dp + 2 * i * W;
          T* r1 = r0 + W;
          const std::int64_t base = 2 * i * W;
          // Zero the two rows (L1-resident, vectorised fill), then put each
          // window's gradient at its argmax: no data-dependent branches.
          std::fill(r0, r0 + 2 * OW, T(0));
          std::fill(r1, r1 + 2 * OW, T(0));
          index_t nbad = 0;
          for (index_t j = 0; j < OW; ++j) {
            const std::int64_t k = ip[i * OW + j] - base - 2 * j;
            const bool ok = (k == 0) | (k == 1) | (k == W) | (k == W + 1);
            nbad += !ok;
            if (ok) r0[2 * j + k] = gp[i * OW + j];  // k >= W lands in r1
          }
          if (nbad) bad += nbad;
        }
        // rows / columns no window covers (odd H or W)
        for (index_t h = 2 * OH; h < g.H; ++h) std::fill(dp + h * W, dp + (h + 1) * W, T(0));
        if (2 * OW < W)
          for (index_t h = 0; h < 2 * OH; ++h) dp[h * W + W - 1] = T(0);
      }
    });
    return bad.load();
  }
  over_planes(g.N * g.C, g.H * g.W, [&](index_t b, index_t e) {
    for (index_t pl = b; pl < e; ++pl) {
      T* dp = dx + pl * HW;
      std::fill(dp, dp + HW, T(0));
      const T* gp = dy + pl * OHW;
      const std::int64_t* ip = idx + pl * OHW;
      index_t nbad = 0;
      for (index_t k = 0; k < OHW; ++k) {
        const std::int64_t v = ip[k];
        if (v < 0 || v >= HW) {
          ++nbad;
          continue;
        }
        dp[v] += gp[k];
      }
      if (nbad) bad += nbad;
    }
  });
  return bad.load();
}

// Divisor of output (i, j) (see pool.h).
inline index_t avg_divisor(const PoolGeom& g, index_t i, index_t j, bool include_pad) {
  index_t hs = i * g.SH - g.PH, ws = j * g.SW - g.PW;
  index_t he = std::min(hs + g.KH, g.H + g.PH), we = std::min(ws + g.KW, g.W + g.PW);
  if (include_pad) return (he - hs) * (we - ws);
  hs = std::max<index_t>(hs, 0);
  ws = std::max<index_t>(ws, 0);
  he = std::min(he, g.H);
  we = std::min(we, g.W);
  return (he - hs) * (we - ws);
}

template <typename T>
void avg_fwd(const T* x, const PoolGeom& g, bool include_pad, T* y) {
  const index_t OH = g.OH(), OW = g.OW(), HW = g.H * g.W, OHW = OH * OW;
  if (g.full_2x2()) {
    const index_t W = g.W;  // every window is full: divisor 4 either way
    over_planes(g.N * g.C, g.H * g.W, [&](index_t b, index_t e) {
      for (index_t pl = b; pl < e; ++pl) {
        const T* xp = x + pl * HW;
        T* yp = y + pl * OHW;
        for (index_t i = 0; i < OH; ++i) {
          const T* r0 = xp + 2 * i * W;
          const T* r1 = r0 + W;
          for (index_t j = 0; j < OW; ++j)
            yp[i * OW + j] = ((r0[2 * j] + r0[2 * j + 1]) + r1[2 * j] + r1[2 * j + 1]) / T(4);
        }
      }
    });
    return;
  }
  over_planes(g.N * g.C, g.H * g.W, [&](index_t b, index_t e) {
    for (index_t pl = b; pl < e; ++pl) {
      const T* xp = x + pl * HW;
      T* yp = y + pl * OHW;
      for (index_t i = 0; i < OH; ++i) {
        const index_t h0 = std::max<index_t>(i * g.SH - g.PH, 0);
        const index_t h1 = std::min<index_t>(i * g.SH - g.PH + g.KH, g.H);
        for (index_t j = 0; j < OW; ++j) {
          const index_t w0 = std::max<index_t>(j * g.SW - g.PW, 0);
          const index_t w1 = std::min<index_t>(j * g.SW - g.PW + g.KW, g.W);
          T s = T(0);
          for (index_t h = h0; h < h1; ++h)
            for (index_t w = w0; w < w1; ++w) s += xp[h * g.W + w];
          yp[i * OW + j] = s / T(avg_divisor(g, i, j, include_pad));
        }
      }
    }
  });
}

template <typename T>
void avg_bwd(const T* dy, const PoolGeom& g, bool include_pad, T* dx) {
  const index_t OH = g.OH(), OW = g.OW(), HW = g.H * g.W, OHW = OH * OW;
  over_planes(g.N * g.C, g.H * g.W, [&](index_t b, index_t e) {
    for (index_t pl = b; pl < e; ++pl) {
      T* dp = dx + pl * HW;
      std::fill(dp, dp + HW, T(0));
      const T* gp = dy + pl * OHW;
      for (index_t i = 0; i < OH; ++i) {
        const index_t h0 = std::max<index_t>(i * g.SH - g.PH, 0);
        const index_t h1 = std::min<index_t>(i * g.SH - g.PH + g.KH, g.H);
        for (index_t j = 0; j < OW; ++j) {
          const index_t w0 = std::max<index_t>(j * g.SW - g.PW, 0);
          const index_t w1 = std::min<index_t>(j * g.SW - g.PW + g.KW, g.W);
          const T v = gp[i * OW + j] / T(avg_divisor(g, i, j, include_pad));
          for (index_t h = h0; h < h1; ++h)
            for (index_t w = w0; w < w1; ++w) dp[h * g.W + w] += v;
        }
      }
    }
  });
}

}  // namespace

void max_pool2d_forward(const float* x, const PoolGeom& g, float* y, std::int64_t* idx) noexcept {
  max_fwd(x, g, y, idx);
}
void max_pool2d_forward(const double* x, const PoolGeom& g, double* y, std::int64_t* idx) noexcept {
  max_fwd(x, g, y, idx);
}
index_t max_pool2d_backward(const float* dy, const std::int64_t* idx, const PoolGeom& g,
                            float* dx) noexcept {
  return max_bwd(dy, idx, g, dx);
}
index_t max_pool2d_backward(const double* dy, const std::int64_t* idx, const PoolGeom& g,
                            double* dx) noexcept {
  return max_bwd(dy, idx, g, dx);
}
void avg_pool2d_forward(const float* x, const PoolGeom& g, bool cip, float* y) noexcept {
  avg_fwd(x, g, cip, y);
}
void avg_pool2d_forward(const double* x, const PoolGeom& g, bool cip, double* y) noexcept {
  avg_fwd(x, g, cip, y);
}
void avg_pool2d_backward(const float* dy, const PoolGeom& g, bool cip, float* dx) noexcept {
  avg_bwd(dy, g, cip, dx);
}
void avg_pool2d_backward(const double* dy, const PoolGeom& g, bool cip, double* dx) noexcept {
  avg_bwd(dy, g, cip, dx);
}

}  // namespace neuropil
