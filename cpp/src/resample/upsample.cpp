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

// For a monotone source table src[out] (both nearest and bilinear tables are
// non-decreasing), the outputs that read input i are [first[i], last[i]) (empty: equal).
void output_ranges(const std::vector<index_t>& src, index_t in, std::vector<index_t>& first,
                   std::vector<index_t>& last) {
  first.assign(static_cast<std::size_t>(in), 0);
  last.assign(static_cast<std::size_t>(in), 0);
  const index_t out = static_cast<index_t>(src.size());
  index_t d = 0;
  for (index_t i = 0; i < in; ++i) {
    while (d < out && src[d] < i) ++d;
    first[i] = d;
    while (d < out && src[d] == i) ++d;
    last[i] = d;
  }
}

// The adjoint along W as fixed-width gathers: dx[j] = sum_k wt[j][k] * t[col[j][k]],
// k < K, where (col, wt) lists the output columns that read input column j (those with
// src0 == j in increasing order, then those with src1 == j) and pads the list to the
// longest one, K, with col = OW: an extra 0 at the end of each t row (so padding adds
// +0, never a NaN from another column). Branch-free: the short, irregular runs of a
// loop over ranges cost a mispredicted branch per column.
template <typename T>
struct ColumnGather {
  index_t K = 1;
  std::vector<index_t> col;
  std::vector<T> wt;

  // taps: (src0, w0) and, when src1 != nullptr, (src1, w1) for every output column.
  ColumnGather(index_t in, index_t out, const index_t* src0, const T* w0, const index_t* src1,
               const T* w1) {
    std::vector<index_t> count(static_cast<std::size_t>(in), 0);
    for (index_t d = 0; d < out; ++d) {
      ++count[src0[d]];
      if (src1 != nullptr) ++count[src1[d]];
    }
    for (index_t j = 0; j < in; ++j) K = std::max(K, count[j]);
    col.assign(static_cast<std::size_t>(in * K), out);
    wt.assign(static_cast<std::size_t>(in * K), T(0));
    std::fill(count.begin(), count.end(), 0);
    auto add = [&](const index_t* src, const T* w) {
      for (index_t d = 0; d < out; ++d) {
        const index_t j = src[d], k = count[j]++;
        col[j * K + k] = d;
        wt[j * K + k] = w != nullptr ? w[d] : T(1);
      }
    };
    add(src0, w0);
    if (src1 != nullptr) add(src1, w1);
  }

  // dr[0, in) from one row t[0, out] (t[out] must be 0).
  void apply(const T* t, index_t in, T* dr) const {
    const index_t* c = col.data();
    const T* w = wt.data();
    for (index_t j = 0; j < in; ++j, c += K, w += K) {
      T sum = T(0);
      for (index_t k = 0; k < K; ++k) sum += w[k] * t[c[k]];
      dr[j] = sum;
    }
  }
};

// Gather form of the adjoint: dx[h, j] = sum over the output columns that read j of the
// sum over the output rows that read h, rows summed first (vectorised across the row),
// then columns (ColumnGather), each in increasing order; no scatter, no atomics.
template <typename T>
void nearest_backward(const T* dy, const ResampleGeom& g, T* dx) {
  const std::vector<index_t> sh = nearest_table(g.H, g.OH, g.scale_h);
  const std::vector<index_t> sw = nearest_table(g.W, g.OW, g.scale_w);
  std::vector<index_t> rb, re;
  output_ranges(sh, g.H, rb, re);
  const ColumnGather<T> cols(g.W, g.OW, sw.data(), nullptr, nullptr, nullptr);
  const index_t planes = g.N * g.C, HW = g.H * g.W, OHW = g.OH * g.OW, OW = g.OW;
  parallel_for(planes, threads_for(planes * (HW + OHW)), [&](index_t b, index_t e) {
    std::vector<T> tmp(static_cast<std::size_t>(OW + 1), T(0));  // tmp[OW] stays 0
    T* t = tmp.data();
    for (index_t p = b; p < e; ++p) {
      const T* dyp = dy + p * OHW;
      for (index_t h = 0; h < g.H; ++h) {
        T* dr = dx + p * HW + h * g.W;
        if (rb[h] == re[h]) {
          std::fill(dr, dr + g.W, T(0));
          continue;
        }
        const T* g0 = dyp + rb[h] * OW;
        for (index_t ow = 0; ow < OW; ++ow) t[ow] = g0[ow];
        for (index_t oh = rb[h] + 1; oh < re[h]; ++oh) {
          const T* gr = dyp + oh * OW;
          for (index_t ow = 0; ow < OW; ++ow) t[ow] += gr[ow];
        }
        cols.apply(t, g.W, dr);
      }
    }
  });
}

// Separable: each input row needed is first interpolated along W (h_row[ow] =
// w0 * x[i, j0] + w1 * x[i, j1]), then output rows blend two of them
// (y = h0 * h_row(i0) + h1 * h_row(i1)): PyTorch's expression, term for term, with the
// W pass done once per input row instead of once per output row and tap.
template <typename T>
void bilinear_forward(const T* x, const ResampleGeom& g, T* y) {
  const LinearTable<T> th = linear_table<T>(g.H, g.OH, g.scale_h, g.align_corners);
  const LinearTable<T> tw = linear_table<T>(g.W, g.OW, g.scale_w, g.align_corners);
  const index_t rows = g.N * g.C * g.OH, OW = g.OW, W = g.W;
  parallel_for(rows, threads_for(rows * OW), [&](index_t b, index_t e) {
    // two cached W-interpolated rows, keyed by (plane * H + input row)
    std::vector<T> buf(static_cast<std::size_t>(2 * OW));
    T* slot[2] = {buf.data(), buf.data() + OW};
    index_t key[2] = {-1, -1};
    auto h_row = [&](index_t k, int avoid) -> const T* {
      if (key[0] == k) return slot[0];
      if (key[1] == k) return slot[1];
      const int s = avoid == 0 ? 1 : 0;  // never evict the row the caller holds
      const T* xr = x + k * W;
      T* out = slot[s];
      for (index_t ow = 0; ow < OW; ++ow)
        out[ow] = tw.w0[ow] * xr[tw.i0[ow]] + tw.w1[ow] * xr[tw.i1[ow]];
      key[s] = k;
      return out;
    };
    for (index_t r = b; r < e; ++r) {
      const index_t plane = r / g.OH, oh = r % g.OH;
      const index_t k0 = plane * g.H + th.i0[oh], k1 = plane * g.H + th.i1[oh];
      const T* a0 = h_row(k0, -1);
      const int held = a0 == slot[0] ? 0 : 1;
      const T* a1 = h_row(k1, held);
      const T h0 = th.w0[oh], h1 = th.w1[oh];
      T* yr = y + r * OW;
      for (index_t ow = 0; ow < OW; ++ow) yr[ow] = h0 * a0[ow] + h1 * a1[ow];
    }
  });
}

// Separable adjoint: dy rows are blended into W-interpolated input rows (t[i0] += h0 *
// dy_row, t[i1] += h1 * dy_row, vectorised across the row), then each input column
// gathers its share of such a row (ColumnGather): dx[h, j] = sum of w0 * t[h, ow] over
// the columns ow whose i0 is j, then of w1 * t[h, ow] over those whose i1 is j.
template <typename T>
void bilinear_backward(const T* dy, const ResampleGeom& g, T* dx) {
  const LinearTable<T> th = linear_table<T>(g.H, g.OH, g.scale_h, g.align_corners);
  const LinearTable<T> tw = linear_table<T>(g.W, g.OW, g.scale_w, g.align_corners);
  const ColumnGather<T> cols(g.W, g.OW, tw.i0.data(), tw.w0.data(), tw.i1.data(),
                             tw.w1.data());
  const index_t planes = g.N * g.C, HW = g.H * g.W, OHW = g.OH * g.OW, OW = g.OW, W = g.W;
  const index_t TW = OW + 1;  // t rows end with a 0 for ColumnGather's padding
  parallel_for(planes, threads_for(planes * (HW + OHW)), [&](index_t b, index_t e) {
    std::vector<T> tmp(static_cast<std::size_t>(g.H * TW));
    for (index_t p = b; p < e; ++p) {
      T* t = tmp.data();
      std::fill(tmp.begin(), tmp.end(), T(0));
      const T* dyp = dy + p * OHW;
      for (index_t oh = 0; oh < g.OH; ++oh) {
        const T* gr = dyp + oh * OW;
        T* t0 = t + th.i0[oh] * TW;
        T* t1 = t + th.i1[oh] * TW;
        const T h0 = th.w0[oh], h1 = th.w1[oh];
        for (index_t ow = 0; ow < OW; ++ow) t0[ow] += h0 * gr[ow];
        for (index_t ow = 0; ow < OW; ++ow) t1[ow] += h1 * gr[ow];
      }
      T* dxp = dx + p * HW;
      for (index_t h = 0; h < g.H; ++h) cols.apply(t + h * TW, W, dxp + h * W);
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
