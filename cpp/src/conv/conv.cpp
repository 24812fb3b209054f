// conv2d by im2col + GEMM (math and layout in neuropil/conv.h).
#include "neuropil/conv.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>

#include "neuropil/cpu.h"
#include "neuropil/gemm.h"
#include "neuropil/parallel.h"
#include "direct.h"
#include "scratch.h"

namespace neuropil {
namespace {

using conv_detail::Buffer;

Buffer& cols_buffer() {
  static thread_local Buffer b;
  return b;
}
Buffer& partial_buffer() {
  static thread_local Buffer b;
  return b;
}

// Output columns j in [lo, hi) read input column j*S + off inside [0, W).
inline void valid_range(index_t off, index_t S, index_t W, index_t OW, index_t* lo, index_t* hi) {
  index_t l = off >= 0 ? 0 : (-off + S - 1) / S;
  index_t h = (W - 1 - off) < 0 ? 0 : (W - 1 - off) / S + 1;
  l = std::min(l, OW);
  h = std::min(h, OW);
  if (h < l) h = l;
  *lo = l;
  *hi = h;
}

// One image: x [C, H, W] -> cols [C*KH*KW, OH*OW].
template <typename T>
void im2col_image(const T* x, const ConvGeom& g, T* cols) {
  const index_t OH = g.OH(), OW = g.OW();
  for (index_t c = 0; c < g.C; ++c) {
    for (index_t p = 0; p < g.KH; ++p) {
      for (index_t q = 0; q < g.KW; ++q) {
        T* row = cols + ((c * g.KH + p) * g.KW + q) * OH * OW;
        const index_t off = q * g.DW - g.PW;
        index_t lo, hi;
        valid_range(off, g.SW, g.W, OW, &lo, &hi);
        for (index_t i = 0; i < OH; ++i) {
          T* r = row + i * OW;
          const index_t ih = i * g.SH - g.PH + p * g.DH;
          if (ih < 0 || ih >= g.H) {
            std::fill(r, r + OW, T(0));
            continue;
          }
          const T* src = x + (c * g.H + ih) * g.W + off;
          for (index_t j = 0; j < lo; ++j) r[j] = T(0);
          if (g.SW == 1) {
            for (index_t j = lo; j < hi; ++j) r[j] = src[j];
          } else {
            const index_t s = g.SW;
            for (index_t j = lo; j < hi; ++j) r[j] = src[j * s];
          }
          for (index_t j = hi; j < OW; ++j) r[j] = T(0);
        }
      }
    }
  }
}

// One image: x [C, H, W] = col2im(cols [C*KH*KW, OH*OW]) (x overwritten).
template <typename T>
void col2im_image(const T* cols, const ConvGeom& g, T* x) {
  const index_t OH = g.OH(), OW = g.OW();
  std::fill(x, x + g.C * g.H * g.W, T(0));
  for (index_t c = 0; c < g.C; ++c) {
    for (index_t p = 0; p < g.KH; ++p) {
      for (index_t q = 0; q < g.KW; ++q) {
        const T* row = cols + ((c * g.KH + p) * g.KW + q) * OH * OW;
        const index_t off = q * g.DW - g.PW;
        index_t lo, hi;
        valid_range(off, g.SW, g.W, OW, &lo, &hi);
        for (index_t i = 0; i < OH; ++i) {
          const index_t ih = i * g.SH - g.PH + p * g.DH;
          if (ih < 0 || ih >= g.H) continue;
          const T* r = row + i * OW;
          T* dst = x + (c * g.H + ih) * g.W + off;
          if (g.SW == 1) {
            for (index_t j = lo; j < hi; ++j) dst[j] += r[j];
          } else {
            const index_t s = g.SW;
            for (index_t j = lo; j < hi; ++j) dst[j * s] += r[j];
          }
        }
      }
    }
  }
}

// Sum of r[0..n) in a fixed order: 8 interleaved partial sums (so the loop
// vectorises and is not bound by the add latency), folded pairwise.
template <typename T>
T row_sum(const T* r, index_t n) {
  T acc[8] = {T(0), T(0), T(0), T(0), T(0), T(0), T(0), T(0)};
  index_t j = 0;
  for (; j + 8 <= n; j += 8)
    for (int l = 0; l < 8; ++l) acc[l] += r[j + l];
  for (int l = 0; j < n; ++j, ++l) acc[l] += r[j];
  return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

// Dot product of a[0..n) and b[0..n) in a fixed order (8 interleaved lanes).
template <typename T>
T row_dot(const T* a, const T* b, index_t n) {
  T acc[8] = {T(0), T(0), T(0), T(0), T(0), T(0), T(0), T(0)};
  index_t j = 0;
  for (; j + 8 <= n; j += 8)
    for (int l = 0; l < 8; ++l) acc[l] += a[j + l] * b[j + l];
  for (int l = 0; j < n; ++j, ++l) acc[l] += a[j] * b[j];
  return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

// GEMM depth below which dW = dy @ cols^T is computed as plain dot products:
// with a handful of columns (e.g. 3x3 on one input channel) the packed GEMM
// spends its time on edge tiles.
constexpr index_t kSmallK = 16;

// Runs fn(begin, end) over [0, n): split over threads when there are at
// least as many items as threads, else serially so that the GEMMs inside
// can use the threads themselves. Either way each item is computed the same.
// Below this many flops a call runs on one thread: waking a second one (and
// the barrier at the end) costs more than it saves on small images.
constexpr double kParallelWork = 2e5;

template <typename Fn>
void over_items(index_t n, const Fn& fn, double work = 1e18) {
  const int threads = get_num_threads();
  if (threads > 1 && n >= threads && work >= kParallelWork)
    parallel_for(n, threads, [&](index_t b, index_t e) { fn(b, e); });
  else
    fn(0, n);
}

template <typename T>
void im2col_batch(const T* x, const ConvGeom& g, T* cols) {
  const index_t in = g.C * g.H * g.W, out = g.K() * g.OH() * g.OW();
  over_items(g.N, [&](index_t b, index_t e) {
    for (index_t n = b; n < e; ++n) im2col_image(x + n * in, g, cols + n * out);
  }, double(g.N) * double(out));
}

template <typename T>
void col2im_batch(const T* cols, const ConvGeom& g, T* x) {
  const index_t in = g.C * g.H * g.W, out = g.K() * g.OH() * g.OW();
  over_items(g.N, [&](index_t b, index_t e) {
    for (index_t n = b; n < e; ++n) col2im_image(cols + n * out, g, x + n * in);
  }, double(g.N) * double(out));
}

// The geometry of one group (G = 1, Cg input and OCg output channels).
ConvGeom group_geom(const ConvGeom& g) {
  ConvGeom gg = g;
  gg.C = g.C / g.G;
  gg.OC = g.OC / g.G;
  gg.G = 1;
  return gg;
}

template <typename T>
void forward(const T* x, const T* w, const T* bias, const ConvGeom& g, T* y) {
  const ConvGeom gg = group_geom(g);
  const index_t OHW = g.OH() * g.OW(), K = gg.K(), G = g.G;
  const index_t Cg = gg.C, OCg = gg.OC, in = g.C * g.H * g.W;
  const bool pw = g.pointwise();
  const double work = 2.0 * double(g.N) * double(g.OC) * double(K) * double(OHW);
  over_items(g.N * G, [&](index_t b, index_t e) {
    T* cols = pw ? nullptr : cols_buffer().get<T>(K * OHW);
    for (index_t it = b; it < e; ++it) {
      const index_t n = it / G, gi = it % G;
      const T* xn = x + n * in + gi * Cg * g.H * g.W;
      T* yn = y + (n * g.OC + gi * OCg) * OHW;
      if (!pw) im2col_image(xn, gg, cols);
      gemm(Trans::No, Trans::No, OCg, OHW, K, T(1), w + gi * OCg * K, K, pw ? xn : cols, OHW,
           T(0), yn, OHW);
      if (bias) {
        for (index_t o = 0; o < OCg; ++o) {
          const T bo = bias[gi * OCg + o];
          T* r = yn + o * OHW;
          for (index_t j = 0; j < OHW; ++j) r[j] += bo;
        }
      }
    }
  }, work);
}

template <typename T>
void backward(const T* x, const T* w, const T* dy, const ConvGeom& g, T* dx, T* dw, T* db,
              T beta) {
  const ConvGeom gg = group_geom(g);
  const index_t OHW = g.OH() * g.OW(), K = gg.K(), G = g.G;
  const index_t Cg = gg.C, OCg = gg.OC, in = g.C * g.H * g.W, gin = Cg * g.H * g.W;
  const bool pw = g.pointwise();
  const index_t nchunks = (g.N + kConvChunk - 1) / kConvChunk;
  const bool want_w = dw != nullptr, want_b = db != nullptr;
  const index_t wsize = g.OC * K;
  const index_t psize = (want_w ? wsize : 0) + (want_b ? g.OC : 0);
  T* partials = psize ? partial_buffer().get<T>(psize * nchunks) : nullptr;

  const double work = 4.0 * double(g.N) * double(g.OC) * double(K) * double(OHW);
  over_items(nchunks, [&](index_t cb, index_t ce) {
    const index_t cols_size = pw ? 0 : K * OHW;
    T* cols = pw ? nullptr : cols_buffer().get<T>(cols_size);
    for (index_t ch = cb; ch < ce; ++ch) {
      T* pw_part = want_w ? partials + ch * psize : nullptr;
      T* pb_part = want_b ? partials + ch * psize + (want_w ? wsize : 0) : nullptr;
      const index_t n0 = ch * kConvChunk, n1 = std::min(g.N, n0 + kConvChunk);
      for (index_t n = n0; n < n1; ++n) {
        for (index_t gi = 0; gi < G; ++gi) {
          const T* dyn = dy + (n * g.OC + gi * OCg) * OHW;
          const T* wg = w + gi * OCg * K;
          if (want_w) {
            const T* xn = x + n * in + gi * gin;
            if (!pw) im2col_image(xn, gg, cols);
            const T* cn = pw ? xn : cols;
            T* pwg = pw_part + gi * OCg * K;
            if (K < kSmallK) {
              for (index_t o = 0; o < OCg; ++o)
                for (index_t k = 0; k < K; ++k) {
                  const T d = row_dot(dyn + o * OHW, cn + k * OHW, OHW);
                  pwg[o * K + k] = n == n0 ? d : pwg[o * K + k] + d;
                }
            } else {
              gemm(Trans::No, Trans::Yes, OCg, K, OHW, T(1), dyn, OHW, cn, OHW,
                   n == n0 ? T(0) : T(1), pwg, K);
            }
          }
          if (want_b) {
            for (index_t o = 0; o < OCg; ++o) {
              const T s = row_sum(dyn + o * OHW, OHW);
              T& pb = pb_part[gi * OCg + o];
              pb = n == n0 ? s : pb + s;
            }
          }
          if (dx) {
            T* dxn = dx + n * in + gi * gin;
            if (pw) {
              gemm(Trans::Yes, Trans::No, Cg, OHW, OCg, T(1), wg, K, dyn, OHW, T(0), dxn, OHW);
            } else {
              gemm(Trans::Yes, Trans::No, K, OHW, OCg, T(1), wg, K, dyn, OHW, T(0), cols, OHW);
              col2im_image(cols, gg, dxn);
            }
          }
        }
      }
    }
  }, work);

  if (psize == 0) return;
  // Fold chunk partials in chunk order; elements are independent.
  const index_t nout = psize;
  over_items(nout, [&](index_t b, index_t e) {
    for (index_t i = b; i < e; ++i) {
      T* dst;
      if (want_w && i < wsize) dst = dw + i;
      else dst = db + (i - (want_w ? wsize : 0));
      T s = beta == T(0) ? partials[i] : beta * *dst + partials[i];
      for (index_t ch = 1; ch < nchunks; ++ch) s += partials[ch * psize + i];
      *dst = s;
    }
  }, double(psize) * double(nchunks));
}

// Channel sums of v [N, C, P]: s[c] = beta * s[c] + sum over n, p, in a
// fixed order (images in order, each plane by row_sum), whatever the threads.
template <typename T>
void channel_sums(const T* v, index_t N, index_t C, index_t P, T beta, T* s) {
  over_items(C, [&](index_t b, index_t e) {
    for (index_t c = b; c < e; ++c) {
      T acc = T(0);
      for (index_t n = 0; n < N; ++n) acc += row_sum(v + (n * C + c) * P, P);
      s[c] = beta == T(0) ? acc : beta * s[c] + acc;
    }
  }, double(N) * double(C) * double(P));
}

template <typename T>
void transpose_forward(const T* x, const T* w, const T* b, const ConvGeom& g, T* y) {
  conv2d_backward(static_cast<const T*>(nullptr), w, x, g, y, static_cast<T*>(nullptr),
                  static_cast<T*>(nullptr), T(0));
  if (!b) return;
  const index_t HW = g.H * g.W;
  over_items(g.N * g.C, [&](index_t lo, index_t hi) {
    for (index_t i = lo; i < hi; ++i) {
      const T bc = b[i % g.C];
      T* r = y + i * HW;
      for (index_t j = 0; j < HW; ++j) r[j] += bc;
    }
  }, double(g.N) * double(g.C) * double(HW));
}

template <typename T>
void transpose_backward(const T* x, const T* w, const T* dy, const ConvGeom& g, T* dx, T* dw,
                        T* db, T beta) {
  if (dx) conv2d_forward(dy, w, static_cast<const T*>(nullptr), g, dx);
  if (dw) conv2d_backward(dy, w, x, g, static_cast<T*>(nullptr), dw, static_cast<T*>(nullptr), beta);
  if (db) channel_sums(dy, g.N, g.C, g.H * g.W, beta, db);
}

}  // namespace

void conv_transpose2d_forward(const float* x, const float* w, const float* b, const ConvGeom& g,
                              float* y) noexcept {
  const IsaScope pin;  // one kernel family for the whole call (set_isa may race)
  transpose_forward(x, w, b, g, y);
}
void conv_transpose2d_forward(const double* x, const double* w, const double* b,
                              const ConvGeom& g, double* y) noexcept {
  transpose_forward(x, w, b, g, y);
}
void conv_transpose2d_backward(const float* x, const float* w, const float* dy,
                               const ConvGeom& g, float* dx, float* dw, float* db,
                               float beta) noexcept {
  const IsaScope pin;  // one kernel family for the whole call (set_isa may race)
  transpose_backward(x, w, dy, g, dx, dw, db, beta);
}
void conv_transpose2d_backward(const double* x, const double* w, const double* dy,
                               const ConvGeom& g, double* dx, double* dw, double* db,
                               double beta) noexcept {
  transpose_backward(x, w, dy, g, dx, dw, db, beta);
}

void im2col(const float* x, const ConvGeom& g, float* cols) noexcept { im2col_batch(x, g, cols); }
void im2col(const double* x, const ConvGeom& g, double* cols) noexcept { im2col_batch(x, g, cols); }
void col2im(const float* cols, const ConvGeom& g, float* x) noexcept { col2im_batch(cols, g, x); }
void col2im(const double* cols, const ConvGeom& g, double* x) noexcept { col2im_batch(cols, g, x); }

void conv2d_forward(const float* x, const float* w, const float* b, const ConvGeom& g,
                    float* y) noexcept {
  const IsaScope pin;  // one kernel family for the whole call (set_isa may race)
  if (conv_detail::planar_forward_supported(g))
    conv_detail::planar_forward(x, w, b, g, y);
  else if (conv_detail::direct_supported(g))
    conv_detail::direct_forward(x, w, b, g, y);
  else
    forward(x, w, b, g, y);
}
void conv2d_forward(const double* x, const double* w, const double* b, const ConvGeom& g,
                    double* y) noexcept {
  forward(x, w, b, g, y);
}
void conv2d_backward(const float* x, const float* w, const float* dy, const ConvGeom& g,
                     float* dx, float* dw, float* db, float beta) noexcept {
  const IsaScope pin;  // one kernel family for the whole call (set_isa may race)
  // Planar tiles first (few channels per group), then direct, then im2col + GEMM.
  const bool planar_dx = dx && conv_detail::planar_dx_supported(g);
  const bool planar_w = (dw || db) && conv_detail::planar_dw_supported(g);
  if (planar_dx || planar_w)
    conv_detail::planar_backward(x, w, dy, g, planar_dx ? dx : nullptr, planar_w ? dw : nullptr,
                                 planar_w ? db : nullptr, beta);
  if (planar_dx) dx = nullptr;
  if (planar_w) dw = db = nullptr;
  if (!dx && !dw && !db) return;
  if (!conv_detail::direct_supported(g)) {
    backward(x, w, dy, g, dx, dw, db, beta);
    return;
  }
  const bool dx_direct = conv_detail::direct_dx_supported(g);
  if (dx_direct || dw || db)
    conv_detail::direct_backward(x, w, dy, g, dx_direct ? dx : nullptr, dw, db, beta);
  if (dx && !dx_direct) backward<float>(x, w, dy, g, dx, nullptr, nullptr, 0.0f);
}
void conv2d_backward(const double* x, const double* w, const double* dy, const ConvGeom& g,
                     double* dx, double* dw, double* db, double beta) noexcept {
  backward(x, w, dy, g, dx, dw, db, beta);
}

}  // namespace neuropil
