// 2-D max and average pooling over NCHW tensors. No Python here.
//
// Geometry (PoolGeom): x [N, C, H, W], window (KH, KW), stride (SH, SW),
// implicit padding (PH, PW) with PH <= KH/2 and PW <= KW/2 (as PyTorch), so
// every window holds at least one real element. Output y [N, C, OH, OW] with
//     OH = floor((H + 2*PH - KH) / SH) + 1                 (same for OW)
// or, with ceil_mode (PyTorch's rule), OH = ceil((H + 2*PH - KH) / SH) + 1,
// less one when that last window would start at or past H + PH (it must start
// inside the input or its left padding). Windows that run past the padded
// input are clipped to it.
// Window of output (i, j): rows i*SH - PH .. i*SH - PH + KH - 1, columns alike.
//
// Max: y = max over the window's real elements (padding is -inf);
//   idx[n, c, i, j] = h*W + w of the chosen element within its plane.
//   Ties go to the first element in row-major order; NaN propagates (the first
//   NaN of the window is chosen). Backward: dx = 0, then dx[idx] += dy.
// Average: y = sum of the window's real elements / divisor, where the divisor is
//   (count_include_pad) the window's size clipped to the padded image
//   [-PH, H+PH) x [-PW, W+PW), or (otherwise) the count of real elements.
//   Backward: every real element of the window receives dy / divisor.
// Threads: (n, c) planes are split over threads; each plane is computed by one
// thread in a fixed order, so results are bitwise identical for any thread count.
#pragma once
#include <cstdint>

#include "neuropil/common.h"

namespace neuropil {

struct PoolGeom {
  index_t N, C, H, W;
  index_t KH, KW, SH, SW, PH, PW;
  bool ceil_mode = false;
  index_t OH() const { return out_size(H, KH, SH, PH); }
  index_t OW() const { return out_size(W, KW, SW, PW); }
  // Windows are 2x2, stride 2, unpadded and all of them full (the fast paths).
  bool full_2x2() const {
    return KH == 2 && KW == 2 && SH == 2 && SW == 2 && PH == 0 && PW == 0 &&
           2 * OH() <= H && 2 * OW() <= W;
  }

 private:
  index_t out_size(index_t n, index_t k, index_t s, index_t p) const {
    index_t o = (n + 2 * p - k + (ceil_mode ? s - 1 : 0)) / s + 1;
    if (ceil_mode && (o - 1) * s >= n + p) --o;
    return o;
  }
};

void max_pool2d_forward(const float* x, const PoolGeom& g, float* y, std::int64_t* idx) noexcept;
void max_pool2d_forward(const double* x, const PoolGeom& g, double* y, std::int64_t* idx) noexcept;
// dx [N, C, H, W] (overwritten) from dy and idx [N, C, OH, OW] as written by
// max_pool2d_forward. Returns how many indices were invalid (outside the
// plane; for 2x2/stride-2/unpadded pools, outside their window): those are
// skipped (nothing is written out of bounds) and dx is then not meaningful.
index_t max_pool2d_backward(const float* dy, const std::int64_t* idx, const PoolGeom& g,
                            float* dx) noexcept;
index_t max_pool2d_backward(const double* dy, const std::int64_t* idx, const PoolGeom& g,
                            double* dx) noexcept;

void avg_pool2d_forward(const float* x, const PoolGeom& g, bool count_include_pad,
                        float* y) noexcept;
void avg_pool2d_forward(const double* x, const PoolGeom& g, bool count_include_pad,
                        double* y) noexcept;
// dx [N, C, H, W] (overwritten) from dy [N, C, OH, OW].
void avg_pool2d_backward(const float* dy, const PoolGeom& g, bool count_include_pad,
                         float* dx) noexcept;
void avg_pool2d_backward(const double* dy, const PoolGeom& g, bool count_include_pad,
                         double* dx) noexcept;

}  // namespace neuropil
