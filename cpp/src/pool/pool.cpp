// Max and average pooling (math and layout in neuropil/pool.h).
#include "neuropil/pool.h"

#include <algorithm>
#include <cmath>

#include "neuropil/parallel.h"

namespace neuropil {
namespace {

template <typename Fn>
void over_planes(index_t planes, const Fn& fn) {
  parallel_for(planes, get_num_threads(), [&](index_t b, index_t e) { fn(b, e); });
}

template <typename T>
void max_fwd(const T* x, const PoolGeom& g, T* y, std::int64_t* idx) {
  const index_t OH = g.OH(), OW = g.OW(), HW = g.H * g.W, OHW = OH * OW;
  over_planes(g.N * g.C, [&](index_t b, index_t e) {
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
void max_bwd(const T* dy, const std::int64_t* idx, const PoolGeom& g, T* dx) {
  const index_t HW = g.H * g.W, OHW = g.OH() * g.OW();
  over_planes(g.N * g.C, [&](index_t b, index_t e) {
    for (index_t pl = b; pl < e; ++pl) {
      T* dp = dx + pl * HW;
      std::fill(dp, dp + HW, T(0));
      const T* gp = dy + pl * OHW;
      const std::int64_t* ip = idx + pl * OHW;
      for (index_t k = 0; k < OHW; ++k) dp[ip[k]] += gp[k];
    }
  });
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
  over_planes(g.N * g.C, [&](index_t b, index_t e) {
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
  over_planes(g.N * g.C, [&](index_t b, index_t e) {
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
void max_pool2d_backward(const float* dy, const std::int64_t* idx, const PoolGeom& g,
                         float* dx) noexcept {
  max_bwd(dy, idx, g, dx);
}
void max_pool2d_backward(const double* dy, const std::int64_t* idx, const PoolGeom& g,
                         double* dx) noexcept {
  max_bwd(dy, idx, g, dx);
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
