// 2-D convolution (cross-correlation, as PyTorch's conv2d) over NCHW tensors.
// No Python here.
//
// Geometry (ConvGeom): input x [N, C, H, W], G groups, weight w [OC, C/G, KH, KW]
// (C and OC divisible by G), stride (SH, SW), zero padding (PH, PW), dilation
// (DH, DW). Output y [N, OC, OH, OW] with (PyTorch's formula)
//     OH = floor((H + 2*PH - DH*(KH-1) - 1) / SH) + 1     (same for OW)
//     y[n, o, i, j] = b[o] + sum_{c,p,q} w[o, c, p, q] *
//                     x[n, g*Cg + c, i*SH - PH + p*DH, j*SW - PW + q*DW]
// where g = o / OCg is o's group (Cg = C/G, OCg = OC/G input and output
// channels per group) and taps outside the image read 0.
//
// im2col of one image: cols[(c*KH + p)*KW + q, i*OW + j] = x[c, i*SH-PH+p*DH, j*SW-PW+q*DW]
// (0 out of range), so cols is [C*KH*KW, OH*OW] and y_n = W @ cols + b (G = 1).
// col2im is its adjoint: x[c, h, w] = sum of the cols entries that read (c, h, w).
//
// Backward, per image n and group (dy_n [OCg, OH*OW]):
//     dW += dy_n @ cols_n^T          [OCg, Cg*KH*KW]
//     db += rowsum(dy_n)             [OCg]
//     dx_n = col2im(W^T @ dy_n)      [Cg, H, W]
//
// Three implementations, chosen per call (and per gradient in backward):
// - planar (float32 under AVX2/AVX-512, stride 1, few channels per group:
//   cpp/src/conv/planar.cpp): output positions in the vector lanes over
//   zero-padded planes; forward when a group has fewer than L/2 outputs
//   (depthwise, a head with a few maps), dX when it has fewer than L/2
//   inputs (a first layer), dW/db when it has one input (depthwise);
// - direct (float32 under the AVX2 and AVX-512 kernel families, column stride
//   1 or 2; cpp/src/conv/direct.h): output channels in vector lanes, taps
//   broadcast straight from the (padded) image, no column buffer; dW by tiles
//   of taps x channels over the output gradient transposed to
//   [positions][channels]; dX, at stride 1, as the convolution of the padded
//   output gradient with the flipped weights, at stride 2 (dilation 1,
//   AVX-512, kernels of at least 2x2) as four such stride-1 convolutions,
//   one per (row, column) parity of dx, with the taps of that parity.
// - reference (every dtype, ISA and geometry): im2col + GEMM per image and
//   group. 1x1 kernels with stride 1, padding 0 skip im2col (cols_n is x_n).
//
// Threads: images are split over threads; each output element is computed by
// one thread in a fixed order. dW and db are summed over fixed chunks of
// kConvChunk images (each chunk in image order) and the chunk partials are
// folded in chunk order, so every result is bitwise identical for any thread
// count. Scratch (padded planes, im2col columns, chunk partials) lives in
// grow-only per-thread buffers reused across calls.
#pragma once
#include <cstdint>

#include "neuropil/common.h"

namespace neuropil {

struct ConvGeom {
  index_t N, C, H, W;   // input
  index_t OC, KH, KW;   // weight [OC, C/G, KH, KW]
  index_t SH, SW, PH, PW, DH, DW;
  index_t G = 1;        // groups
  index_t OH() const { return (H + 2 * PH - DH * (KH - 1) - 1) / SH + 1; }
  index_t OW() const { return (W + 2 * PW - DW * (KW - 1) - 1) / SW + 1; }
  index_t K() const { return C / G * KH * KW; }  // GEMM depth of one group
  // 1x1, stride 1, padding 0: cols_n is x_n itself.
  bool pointwise() const { return KH == 1 && KW == 1 && SH == 1 && SW == 1 && PH == 0 && PW == 0; }
};

// Images fixed per dW/db partial sum (independent of the thread count).
constexpr index_t kConvChunk = 4;

// im2col over a batch: x [N, C, H, W] -> cols [N, C*KH*KW, OH*OW]. (OC and G are unused.)
void im2col(const float* x, const ConvGeom& g, float* cols) noexcept;
void im2col(const double* x, const ConvGeom& g, double* cols) noexcept;
// col2im over a batch (adjoint of im2col): cols [N, C*KH*KW, OH*OW] -> x [N, C, H, W]
// (x is overwritten: entries no column reads become 0).
void col2im(const float* cols, const ConvGeom& g, float* x) noexcept;
void col2im(const double* cols, const ConvGeom& g, double* x) noexcept;

// y [N, OC, OH, OW] = conv(x [N, C, H, W], w [OC, C/G, KH, KW]) + b [OC] (b may be null).
void conv2d_forward(const float* x, const float* w, const float* b, const ConvGeom& g,
                    float* y) noexcept;
void conv2d_forward(const double* x, const double* w, const double* b, const ConvGeom& g,
                    double* y) noexcept;

// Backward of conv2d_forward given dy [N, OC, OH, OW]. Each output may be null (skipped):
//   dx [N, C, H, W] = dL/dx (overwritten),
//   dw [OC, C/G, KH, KW] = beta * dw + dL/dw,  db [OC] = beta * db + dL/db
// (beta = 0: dw/db are write-only; beta = 1 accumulates, as layers do).
// x is read only when dw is wanted; w only when dx is wanted.
void conv2d_backward(const float* x, const float* w, const float* dy, const ConvGeom& g,
                     float* dx, float* dw, float* db, float beta) noexcept;
void conv2d_backward(const double* x, const double* w, const double* dy, const ConvGeom& g,
                     double* dx, double* dw, double* db, double beta) noexcept;

// Transposed convolution (PyTorch's conv_transpose2d): the input gradient of
// the convolution of geometry g, whose output [N, OC, OH, OW] is the
// transposed convolution's input and whose input [N, C, H, W] is its output;
// the weight w [OC, C/G, KH, KW] is PyTorch's ConvTranspose2d weight
// (in_channels, out_channels/groups, kH, kW). g must satisfy g.OH(), g.OW()
// = the transposed input's size.
//   y [N, C, H, W] = conv2d_backward's dx for dy = x [N, OC, OH, OW], + b [C]
// Backward, given dy [N, C, H, W] (each output may be null):
//   dx [N, OC, OH, OW] = conv2d_forward(dy, w)       (overwritten)
//   dw = beta * dw + conv2d's weight gradient with input dy and output gradient x
//   db [C] = beta * db + sum of dy over N, H, W (fixed order)
void conv_transpose2d_forward(const float* x, const float* w, const float* b, const ConvGeom& g,
                              float* y) noexcept;
void conv_transpose2d_forward(const double* x, const double* w, const double* b,
                              const ConvGeom& g, double* y) noexcept;
void conv_transpose2d_backward(const float* x, const float* w, const float* dy,
                               const ConvGeom& g, float* dx, float* dw, float* db,
                               float beta) noexcept;
void conv_transpose2d_backward(const double* x, const double* w, const double* dy,
                               const ConvGeom& g, double* dx, double* dw, double* db,
                               double beta) noexcept;

}  // namespace neuropil
