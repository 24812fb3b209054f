// Resampling of NCHW images: nearest and bilinear interpolation with PyTorch's exact
// index rules (torch.nn.functional.interpolate, modes "nearest" and "bilinear";
// "linear" on (N, C, L) is the same with H = OH = 1). No Python here.
//
// x [N, C, H, W] -> y [N, C, OH, OW]. Each axis (in -> out, with an optional scale
// factor s > 0 that the caller passed to interpolate; s <= 0 means none) maps output
// index d to input indices as follows.
//
// nearest:
//   out == in:        src = d
//   out == 2 * in:    src = d >> 1
//   otherwise:        src = min(floorf(float(d) * r), in - 1),
//                     r = float(1 / s) if s > 0 else float(in) / float(out)   (in float,
//                     whatever T is, as PyTorch's kernel)
// bilinear (arithmetic in T; lambda0 = 1 - lambda1):
//   out == in:        i0 = i1 = d, lambda1 = 0
//   otherwise:        r = align_corners ? (out > 1 ? (in - 1) / (out - 1) : 0)
//                                       : (s > 0 ? 1 / s : in / out)
//                     src = align_corners ? r * d : max(r * (d + 0.5) - 0.5, 0)
//                     i0 = min(floor(src), in - 1);  i1 = i0 + (i0 < in - 1)
//                     lambda1 = clamp(src - i0, 0, 1)
//   y = h0 * (w0 * x[i0, j0] + w1 * x[i0, j1]) + h1 * (w0 * x[i1, j0] + w1 * x[i1, j1])
//
// Bilinear runs separably: each needed input row is interpolated along W once
// (w0 * x[i, j0] + w1 * x[i, j1]) and output rows blend two such rows, which is the
// expression above term for term.
//
// Backward (the adjoint), as gathers and separable passes, no atomics:
//   nearest:  dx[h, j] = sum over the output columns that read j of (sum over the output
//             rows that read h of dy), each sum in increasing index order;
//   bilinear: t[i, :] = sum over output rows of h-weight * dy[row, :], then
//             dx[i, j] = sum of w0 * t[i, ow] over the columns ow with j0 = j, plus the
//             sum of w1 * t[i, ow] over those with j1 = j.
// Parallel over (n, c) planes, each plane summed by one thread in that fixed order:
// bitwise identical for any thread count. Forward is parallel over output rows. NaN
// propagates (a NaN tap with weight 0 still gives NaN, as in PyTorch).
#pragma once
#include "neuropil/common.h"

namespace neuropil {

enum class Interp : int { Nearest = 0, Bilinear = 1 };

struct ResampleGeom {
  index_t N, C, H, W, OH, OW;
  double scale_h, scale_w;  // the scale factors given to interpolate; <= 0: none
  bool align_corners;       // bilinear only
};

template <typename T>
void upsample_forward(const T* x, const ResampleGeom& g, Interp mode, T* y) noexcept;

// dx [N, C, H, W] (overwritten) from dy [N, C, OH, OW].
template <typename T>
void upsample_backward(const T* dy, const ResampleGeom& g, Interp mode, T* dx) noexcept;

}  // namespace neuropil
