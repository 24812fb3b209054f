// Nearest and bilinear resampling (index rules in neuropil/resample.h). Source indices
// and weights are tabulated once per call for each axis; the loops then gather
// (forward, parallel over output rows) or scatter (backward, parallel over planes).
#include "neuropil/resample.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "neuropil/parallel.h"

namespace neuropil {
namespace {

// Memory-bound: one thread below this many elements touched.
int threads_for(index_t work) { return work >= (index_t(1) << 16) ? get_num_threads() : 1; }

// PyTorch's nearest_idx: the scale is a float whatever the data type.
std::vector<index_t> nearest_table(index_t in, index_t out, double scale) {
  std::vector<index_t> src(static_cast<std::size_t>(out));
  if (out == in) {
    for (index_t d = 0; d < out; ++d) src[d] = d;
  } else if (out == 2 * in) {
    for (index_t d = 0; d < out; ++d) src[d] = d >> 1;
  } else {
    const float r = scale > 0.0 ? static_cast<float>(1.0 / scale)
                                : static_cast<float>(in) / static_cast<float>(out);
    for (index_t d = 0; d < out; ++d)
      src[d] = std::min(static_cast<index_t>(std::floor(static_cast<float>(d) * r)), in - 1);
  }
  return src;
}

template <typename T>
struct LinearTable {
  std::vector<index_t> i0, i1;
  std::vector<T> w0, w1;
};

// PyTorch's area_pixel_compute_scale / area_pixel_compute_source_index (not cubic) and
// guard_index_and_lambda, in T.
template <typename T>
LinearTable<T> linear_table(index_t in, index_t out, double scale, bool align_corners) {
  LinearTable<T> t;
  const std::size_t n = static_cast<std::size_t>(out);
  t.i0.resize(n);
  t.i1.resize(n);
  t.w0.resize(n);
  t.w1.resize(n);
  T r;
  if (align_corners)
    r = out > 1 ? static_cast<T>(in - 1) / static_cast<T>(out - 1) : T(0);
  else
    r = scale > 0.0 ? static_cast<T>(1.0 / scale) : static_cast<T>(in) / static_cast<T>(out);
  for (index_t d = 0; d < out; ++d) {
    if (out == in) {
      t.i0[d] = t.i1[d] = d;
      t.w0[d] = T(1);
      t.w1[d] = T(0);
      continue;
    }
    T src;
    if (align_corners) {
      src = r * static_cast<T>(d);
    } else {
      src = r * (static_cast<T>(d) + T(0.5)) - T(0.5);
      if (src < T(0)) src = T(0);
    }
    const index_t i0 = std::min(static_cast<index_t>(std::floor(src)), in - 1);
    const T lambda = std::min(std::max(src - static_cast<T>(i0), T(0)), T(1));
    t.i0[d] = i0;
    t.i1[d] = i0 + (i0 < in - 1 ? 1 : 0);
    t.w1[d] = lambda;
    t.w0[d] = T(1) - lambda;
  }
  return t;
}

template <typename T>
void nearest_forward(const T* x, const ResampleGeom& g, T* y) {
  const std::vector<index_t> sh = nearest_table(g.H, g.OH, g.scale_h);
  const std::vector<index_t> sw = nearest_table(g.W, g.OW, g.scale_w);
  const index_t rows = g.N * g.C * g.OH, OW = g.OW, W = g.W;
  const bool doubled = g.OW == 2 * g.W;
  parallel_for(rows, threads_for(rows * OW), [&](index_t b, index_t e) {
    for (index_t r = b; r < e; ++r) {
      const index_t plane = r / g.OH, oh = r % g.OH;
      T* yr = y + r * OW;
      if (r > b && oh > 0 && sh[oh] == sh[oh - 1]) {  // same source row: copy our last row
        std::memcpy(yr, yr - OW, static_cast<std::size_t>(OW) * sizeof(T));
        continue;
      }
      const T* xr = x + (plane * g.H + sh[oh]) * W;
      if (doubled) {
        for (index_t j = 0; j < W; ++j) yr[2 * j] = yr[2 * j + 1] = xr[j];
      } else {
        for (index_t ow = 0; ow < OW; ++ow) yr[ow] = xr[sw[ow]];
      }
    }
  });
}

template <typename T>
void nearest_backward(const T* dy, const ResampleGeom& g, T* dx) {
  const std::vector<index_t> sh = nearest_table(g.H, g.OH, g.scale_h);
  const std::vector<index_t> sw = nearest_table(g.W, g.OW, g.scale_w);
  const index_t planes = g.N * g.C, HW = g.H * g.W, OHW = g.OH * g.OW;
  parallel_for(planes, threads_for(planes * (HW + OHW)), [&](index_t b, index_t e) {
    for (index_t p = b; p < e; ++p) {
      T* dxp = dx + p * HW;
      const T* dyp = dy + p * OHW;
      std::fill(dxp, dxp + HW, T(0));
      for (index_t oh = 0; oh < g.OH; ++oh) {
        T* dr = dxp + sh[oh] * g.W;
        const T* gr = dyp + oh * g.OW;
        for (index_t ow = 0; ow < g.OW; ++ow) dr[sw[ow]] += gr[ow];
      }
    }
  });
}

template <typename T>
void bilinear_forward(const T* x, const ResampleGeom& g, T* y) {
  const LinearTable<T> th = linear_table<T>(g.H, g.OH, g.scale_h, g.align_corners);
  const LinearTable<T> tw = linear_table<T>(g.W, g.OW, g.scale_w, g.align_corners);
  const index_t rows = g.N * g.C * g.OH, OW = g.OW, W = g.W;
  const index_t* j0 = tw.i0.data();
  const index_t* j1 = tw.i1.data();
  const T* w0 = tw.w0.data();
  const T* w1 = tw.w1.data();
  parallel_for(rows, threads_for(rows * OW), [&](index_t b, index_t e) {
    for (index_t r = b; r < e; ++r) {
      const index_t plane = r / g.OH, oh = r % g.OH;
      const T* r0 = x + (plane * g.H + th.i0[oh]) * W;
      const T* r1 = x + (plane * g.H + th.i1[oh]) * W;
      const T h0 = th.w0[oh], h1 = th.w1[oh];
      T* yr = y + r * OW;
      for (index_t ow = 0; ow < OW; ++ow)
        yr[ow] = h0 * (w0[ow] * r0[j0[ow]] + w1[ow] * r0[j1[ow]]) +
                 h1 * (w0[ow] * r1[j0[ow]] + w1[ow] * r1[j1[ow]]);
    }
  });
}

template <typename T>
void bilinear_backward(const T* dy, const ResampleGeom& g, T* dx) {
  const LinearTable<T> th = linear_table<T>(g.H, g.OH, g.scale_h, g.align_corners);
  const LinearTable<T> tw = linear_table<T>(g.W, g.OW, g.scale_w, g.align_corners);
  const index_t planes = g.N * g.C, HW = g.H * g.W, OHW = g.OH * g.OW, W = g.W;
  parallel_for(planes, threads_for(planes * (HW + OHW)), [&](index_t b, index_t e) {
    for (index_t p = b; p < e; ++p) {
      T* dxp = dx + p * HW;
      const T* dyp = dy + p * OHW;
      std::fill(dxp, dxp + HW, T(0));
      for (index_t oh = 0; oh < g.OH; ++oh) {
        T* r0 = dxp + th.i0[oh] * W;
        T* r1 = dxp + th.i1[oh] * W;
        const T h0 = th.w0[oh], h1 = th.w1[oh];
        const T* gr = dyp + oh * g.OW;
        for (index_t ow = 0; ow < g.OW; ++ow) {
          const T v = gr[ow];
          const index_t a = tw.i0[ow], c = tw.i1[ow];
          const T w0 = tw.w0[ow], w1 = tw.w1[ow];
          r0[a] += h0 * w0 * v;
          r0[c] += h0 * w1 * v;
          r1[a] += h1 * w0 * v;
          r1[c] += h1 * w1 * v;
        }
      }
    }
  });
}

}  // namespace

template <typename T>
void upsample_forward(const T* x, const ResampleGeom& g, Interp mode, T* y) noexcept {
  if (g.N <= 0 || g.C <= 0 || g.OH <= 0 || g.OW <= 0) return;
  if (mode == Interp::Nearest)
    nearest_forward(x, g, y);
  else
    bilinear_forward(x, g, y);
}

template <typename T>
void upsample_backward(const T* dy, const ResampleGeom& g, Interp mode, T* dx) noexcept {
  if (g.N <= 0 || g.C <= 0 || g.H <= 0 || g.W <= 0) return;
  if (mode == Interp::Nearest)
    nearest_backward(dy, g, dx);
  else
    bilinear_backward(dy, g, dx);
}

#define NEUROPIL_INSTANTIATE(T)                                                              \
  template void upsample_forward<T>(const T*, const ResampleGeom&, Interp, T*) noexcept;     \
  template void upsample_backward<T>(const T*, const ResampleGeom&, Interp, T*) noexcept;
NEUROPIL_INSTANTIATE(float)
NEUROPIL_INSTANTIATE(double)
#undef NEUROPIL_INSTANTIATE

}  // namespace neuropil
