// Direct convolution kernels (internal to cpp/src/conv): output channels in
// vector lanes, output positions in registers, input taps broadcast from the
// NCHW image. No im2col buffer, no packing of the input.
//
// Forward tile (FwdTile): for UR output positions u of one output row (or,
// in a two-row tile, UW positions of each of two rows: u = r*UW + j at
// x + r*rs_row + j*S, written to out + (r*out_row + j)*ld_out) and
// NB*L output channels (L = vector lanes),
//   out[u][o] = init[o] + sum_{c, t} x[c*cs + tap_off[t] + u*S] * w[c][t][o]
// where x points at the tile's first position (its top-left tap), S is the
// column stride (a template parameter) and w is the weight block packed with
// the channels innermost ([C][KH*KW][NB*L], zero lanes past the real ones),
// t = kh*KW + kw. With accumulate, the tile starts from out instead of init
// (the driver splits C into blocks whose weights stay in L1). Accumulation
// runs over (c, t) in that order for every element, so the result depends
// only on the geometry, never on threads or tiles.
//
// Weight-gradient tile (DwTile): for T taps t (flattened (c, kh, kw), at
// offsets tap_off[t] from a position's top-left input element) and NB*L
// output channels,
//   acc[t][o] (+)= sum over images i < nimg, then positions p = (oh, ow), in
//                 order, of x[i*xs + oh*rs_pos + ow*S + tap_off[t]] * dyt[i*ds + p*ld_dyt + o]
// with dyt the output gradient transposed to [positions][channels].
//
// Transposes: dst[c * ldd + r] = src[r * lds + c] for r < rows, c < cols.
//
// Planar tiles (positions in lanes, for few channels: depthwise, a layer
// with few outputs, the input gradient of a layer with few inputs). Output
// positions are the flat positions p of a zero-padded plane of row stride Wp
// (columns past the output width are computed and dropped by the caller), so
// a tap is one contiguous vector load; the padded planes carry L + halo
// floats of slack so the last vector never reads past the buffer.
// Forward (PlFwdTile), NO output channels x V vectors of L positions:
//   out[o][v*L + j] = init[o] + sum_{c, t} w[o*wo + c*KHW + t] * x[c*cs + tap_off[t] + v*L + j]
// accumulated over (c, t) in that order.
// Weight gradient (PlDwTile), NO output channels x T taps:
//   acc[o][t][j] (+)= sum_{v < nvec} dy[o*ldy + v*L + j] * x[tap_off[t] + v*L + j]
// per lane j (lanes are reduced later by the driver, in a fixed order); dy is
// zero at the dropped columns so they add nothing.
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
  float* out;          // [UR][ld_out] (two-row tiles: [2][out_row][ld_out])
  index_t ld_out;
  index_t rs_row;      // two-row tiles: input offset of the second row's first position
  index_t out_row;     // two-row tiles: positions between the two rows in out
  bool accumulate;     // start from out's contents (a later block of input channels)
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
  bool add_to;             // with zero_start: acc = acc + (the sum from zero)
  index_t nimg;            // images summed in order (x and dyt advance by xs, ds)
  index_t xs, ds;
};

struct PlFwdTile {
  const float* x;          // padded planes at the tile's first position, channel 0
  index_t cs;              // plane stride
  const index_t* tap_off;  // [KHW] offsets of the taps within a plane
  index_t C, KHW;
  const float* w;          // [NO][C][KHW] with o-stride wo
  index_t wo;
  const float* init;       // [NO] start values (bias) or null for zeros
  float* out;              // [NO][ldo] at the tile's first position
  index_t ldo;
};

struct PlDwTile {
  const float* x;          // padded input plane, position 0
  const index_t* tap_off;  // [T]
  const float* dy;         // [NO][ldy] flat output gradient (zero at dropped columns)
  index_t ldy;
  index_t nvec;            // vectors of positions
  float* acc;              // acc[o * ldacc + t * L + j]: added to (or overwritten when zero_start)
  index_t ldacc;
  bool zero_start;
};

using fwd_tile_fn = void (*)(const FwdTile&);
using pl_fwd_tile_fn = void (*)(const PlFwdTile&);
using pl_dw_tile_fn = void (*)(const PlDwTile&);
using dw_tile_fn = void (*)(const DwTile&);
using transpose_fn = void (*)(const float* src, index_t lds, index_t rows, index_t cols,
                              float* dst, index_t ldd);
// pad_planes (contract below) with vector stores: a plane of a small layer
// has rows of a few floats, where a copy loop or a library call per row cost
// ~15 cycles a row.
using pad_fn = void (*)(const float* src, index_t C, index_t H, index_t W, index_t top,
                        index_t left, index_t Hp, index_t Wp, float* dst);
// dst[r * ldd + j] = src[r * lds + j] for r < rows, j < cols (vector rows, masked tails).
using copy_rows_fn = void (*)(const float* src, index_t lds, index_t rows, index_t cols,
                              float* dst, index_t ldd);

constexpr int kMaxNB = 4;
constexpr int kMaxUR = 28;
constexpr int kMaxT = 9;
constexpr int kMaxPlNo = 4;   // planar forward: output channels per tile
constexpr int kMaxPlV = 12;   // planar forward: vectors of positions per tile
constexpr int kMaxPlDwNo = 2; // planar weight gradient: output channels per tile

struct DirectKernels {
  int lanes = 0;       // L; 0 = no direct kernels (portable build)
  int max_acc = 0;     // accumulator registers a tile may use (NB * UR, NB * T)
  // fwd[s][nb - 1][ur - 1], s = 0 for column stride 1, 1 for stride 2;
  // fwd2: two-row tiles, [s][nb - 1][uw - 1] for 2 x uw positions
  fwd_tile_fn fwd[2][kMaxNB][kMaxUR] = {};
  fwd_tile_fn fwd2[2][kMaxNB][kMaxUR / 2] = {};
  // dw[s][nb - 1][t - 1]
  dw_tile_fn dw[2][kMaxNB][kMaxT] = {};
  transpose_fn transpose = nullptr;
  pad_fn pad = nullptr;
  copy_rows_fn copy_rows = nullptr;
  // pl_fwd[no - 1][v - 1], pl_dw[no - 1][t - 1] (null where registers do not suffice)
  pl_fwd_tile_fn pl_fwd[kMaxPlNo][kMaxPlV] = {};
  pl_dw_tile_fn pl_dw[kMaxPlDwNo][kMaxT] = {};
  int vregs = 0;       // vector registers of the ISA
};

// The driver (direct.cpp, portable). direct_supported: the active kernel
// family has direct tiles and the geometry suits them (float32 only).
bool direct_supported(const ConvGeom& g);
void direct_forward(const float* x, const float* w, const float* bias, const ConvGeom& g,
                    float* y);
// dw/db (and dx, when direct_dx_supported: stride 1, or under AVX-512 stride
// 2 with dilation 1 and kernels of at least 2x2) as conv2d_backward;
// dx must be null when the direct path cannot compute it.
bool direct_dx_supported(const ConvGeom& g);
void direct_backward(const float* x, const float* w, const float* dy, const ConvGeom& g,
                     float* dx, float* dw, float* db, float beta);

// Shared by the portable drivers (direct.cpp defines them).
const DirectKernels& kernels_for_active_isa();
// dst [C][Hp][Wp] = src [C][H][W] shifted by (top, left) with zeros around
// (top/left may be negative: the source is then cropped).
void pad_planes(const float* src, index_t C, index_t H, index_t W, index_t top, index_t left,
                index_t Hp, index_t Wp, float* dst);
// Sum of r[0..n) in a fixed order (8 interleaved partial sums, folded pairwise).
float row_sum(const float* r, index_t n);

// The planar driver (planar.cpp): stride-1 geometries with few output
// channels per group (forward), few input channels per group (input
// gradient), one input channel per group (weight gradient).
bool planar_forward_supported(const ConvGeom& g);
bool planar_dx_supported(const ConvGeom& g);
bool planar_dw_supported(const ConvGeom& g);
void planar_forward(const float* x, const float* w, const float* bias, const ConvGeom& g,
                    float* y);
// dx (when planar_dx_supported) and dw/db (when planar_dw_supported) as
// conv2d_backward; the caller passes null for what this path does not do.
void planar_backward(const float* x, const float* w, const float* dy, const ConvGeom& g,
                     float* dx, float* dw, float* db, float beta);

#ifdef NEUROPIL_HAVE_AVX2
DirectKernels avx2_direct_kernels();
#endif
#ifdef NEUROPIL_HAVE_AVX512
DirectKernels avx512_direct_kernels();
#endif

}  // namespace conv_detail
}  // namespace neuropil
