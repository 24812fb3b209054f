// Direct convolution kernels (internal to cpp/src/conv): output channels in
// vector lanes, output positions in registers, input taps broadcast from the
// NCHW image. No im2col buffer, no packing of the input.
//
// Forward tile (FwdTile): for UR output positions u of one output row and
// NB*L output channels (L = vector lanes),
//   out[u][o] = init[o] + sum_{c, t} x[c*cs + tap_off[t] + u*S] * w[c][t][o]
// where x points at the tile's first position (its top-left tap), S is the
// column stride (a template parameter) and w is the weight block packed with
// the channels innermost ([C][KH*KW][NB*L], zero lanes past the real ones),
// t = kh*KW + kw. Accumulation runs over (c, t) in that order for every element, so the
// result depends only on the geometry, never on threads or tiles.
//
// Weight-gradient tile (DwTile): for T taps t (flattened (c, kh, kw), at
// offsets tap_off[t] from a position's top-left input element) and NB*L
// output channels,
//   acc[t][o] (+)= sum over positions p = (oh, ow) in order of
//                 x[oh*rs_pos + ow*S + tap_off[t]] * dyt[p][o]
// with dyt the output gradient transposed to [positions][channels].
//
// Transposes: dst[c * ldd + r] = src[r * lds + c] for r < rows, c < cols.
//
// This header is shared by the portable driver and the ISA-specific
// translation units: declarations only (STYLE rule 4).
#pragma once
#include <cstdint>

#include "neuropil/conv.h"

namespace neuropil {
namespace conv_detail {

using index_t = std::int64_t;

struct FwdTile {
  const float* x;          // top-left tap of the tile's first position, channel 0
  index_t cs;              // channel stride of x
  const index_t* tap_off;  // [KHW] offsets of the taps (kh, kw) within a channel
  index_t C, KHW;          // taps: C x KHW
  const float* w;      // [C][KH][KW][NB*L]
  const float* init;   // [NB*L] start values (bias) or null for zeros
  float* out;          // [UR][ld_out]
  index_t ld_out;
};

struct DwTile {
  const float* x;          // top-left input element of position (0, 0)
  const index_t* tap_off;  // [T] offsets of the taps from a position's top-left element
  index_t rs_pos;          // input offset between two output rows (SH * row stride)
  index_t OH, OW;          // positions
  const float* dyt;        // [OH*OW][ld_dyt], at the tile's first channel
  index_t ld_dyt;
  float* acc;              // [T][NB*L]: added to (or overwritten when zero_start)
  bool zero_start;
};

using fwd_tile_fn = void (*)(const FwdTile&);
using dw_tile_fn = void (*)(const DwTile&);
using transpose_fn = void (*)(const float* src, index_t lds, index_t rows, index_t cols,
                              float* dst, index_t ldd);

constexpr int kMaxNB = 4;
constexpr int kMaxUR = 28;
constexpr int kMaxT = 9;

struct DirectKernels {
  int lanes = 0;       // L; 0 = no direct kernels (portable build)
  int max_acc = 0;     // accumulator registers a tile may use (NB * UR, NB * T)
  // fwd[s][nb - 1][ur - 1], s = 0 for column stride 1, 1 for stride 2
  fwd_tile_fn fwd[2][kMaxNB][kMaxUR] = {};
  // dw[s][nb - 1][t - 1]
  dw_tile_fn dw[2][kMaxNB][kMaxT] = {};
  transpose_fn transpose = nullptr;
};

// The driver (direct.cpp, portable). direct_supported: the active kernel
// family has direct tiles and the geometry suits them (float32 only).
bool direct_supported(const ConvGeom& g);
void direct_forward(const float* x, const float* w, const float* bias, const ConvGeom& g,
                    float* y);
// dw/db (and dx, when direct_dx_supported: stride 1) as conv2d_backward;
// dx must be null when the direct path cannot compute it.
bool direct_dx_supported(const ConvGeom& g);
void direct_backward(const float* x, const float* w, const float* dy, const ConvGeom& g,
                     float* dx, float* dw, float* db, float beta);

#ifdef NEUROPIL_HAVE_AVX2
DirectKernels avx2_direct_kernels();
#endif
#ifdef NEUROPIL_HAVE_AVX512
DirectKernels avx512_direct_kernels();
#endif

}  // namespace conv_detail
}  // namespace neuropil
