// Driver of the direct convolution (float32, AVX2 or AVX-512 tiles; see
// direct.h for the tiles and neuropil/conv.h for the math).
//
// Forward, per image and group: the input is copied once into a zero-padded
// plane set (skipped without padding); for each block of NB*L output
// channels, every output row (two rows when a row is narrower than the
// register tile) is covered by tiles of UR positions whose results (channels
// in lanes) go to a small row buffer, transposed into the NCHW output a few
// rows at a time; input channels go in blocks whose packed weights stay in
// L1. Weights are packed once per call with the channels innermost. The next
// item's input and output are prefetched a slice per tile call.
//
// Backward, per chunk of kConvChunk images (chunks split over threads):
//   dW: the output gradients of the chunk are transposed to
//       [positions][channels] and tiles of T taps x NB*L channels accumulate
//       over their positions into the chunk's partial; partials are summed in
//       chunk order (the first thread's as it goes, the rest at the end), so
//       dW is bitwise identical for any thread count;
//   dX (stride 1): the convolution of the padded output gradient with the
//       flipped, transposed weights, by the forward tiles; at stride 2, four
//       such convolutions, one per output phase (DxPhase).
#include <algorithm>
#include <cstring>
#include <vector>

#include "direct.h"
#include "neuropil/conv.h"
#include "neuropil/cpu.h"
#include "neuropil/parallel.h"
#include "scratch.h"

namespace neuropil {
namespace conv_detail {
namespace {

const DirectKernels& kernels_for(Isa isa) {
  static const DirectKernels none{};
#ifdef NEUROPIL_HAVE_AVX512
  if (isa == Isa::Avx512) {
    static const DirectKernels k = avx512_direct_kernels();
    return k;
  }
#endif
#ifdef NEUROPIL_HAVE_AVX2
  if (isa >= Isa::Avx2) {
    static const DirectKernels k = avx2_direct_kernels();
    return k;
  }
#endif
  (void)isa;
  return none;
}

// Output-channel blocks of one group: nvec = ceil(OCg / L) vectors split into
// balanced blocks of at most max_nb vectors.
struct OcBlock {
  index_t oc0, noc;  // channels [oc0, oc0 + noc) of the group
  int nb;            // vectors (nb * L lanes, the last ones zero-padded)
  index_t woff;      // offset of the block's packed weights within the group's
};

std::vector<OcBlock> plan_blocks(index_t OCg, int L, int max_nb, index_t taps) {
  const index_t nvec = (OCg + L - 1) / L;
  const index_t nblk = (nvec + max_nb - 1) / max_nb;
  std::vector<OcBlock> out;
  index_t v0 = 0, woff = 0;
  for (index_t b = 0; b < nblk; ++b) {
    const index_t v1 = nvec * (b + 1) / nblk;
    const int nb = int(v1 - v0);
    const index_t oc0 = v0 * L;
    out.push_back({oc0, std::min<index_t>(OCg, v1 * L) - oc0, nb, woff});
    woff += taps * nb * L;
    v0 = v1;
  }
  return out;
}

index_t packed_size(const std::vector<OcBlock>& blocks, index_t taps, int L) {
  const OcBlock& last = blocks.back();
  return last.woff + taps * last.nb * L;
}

// Largest channel block the forward tiles use: 4 vectors of 16 (7 positions
// per tile) or 2 of 8 (6 positions) keep the load:FMA ratio low.
int fwd_max_nb(const DirectKernels& k) { return k.lanes == 16 ? 2 : 2; }
int dw_max_nb(const DirectKernels& k) { return k.lanes == 16 ? 4 : 2; }

// Tiles along one output row: balanced widths of at most max_ur positions.
struct RowTile {
  index_t ow0;
  int ur;
};
std::vector<RowTile> plan_row(index_t OW, int max_ur) {
  const index_t n = (OW + max_ur - 1) / max_ur;
  std::vector<RowTile> out;
  for (index_t t = 0; t < n; ++t) {
    const index_t a = OW * t / n, b = OW * (t + 1) / n;
    out.push_back({a, int(b - a)});
  }
  return out;
}

// One image of one group through the forward tiles:
//   y[o * ldy + oh * OW + ow] (o < OCg) = conv of the input planes xin
//   ([Cin] planes of stride cs, rows of stride rs, already padded so that
//   output (oh, ow) reads xin[oh*SH*rs + ow*SW] + taps).
struct ImageConv {
  const DirectKernels* k;
  index_t Cin, KH, KW, DH, DW, SH, SW, OH, OW;
  const std::vector<OcBlock>* blocks;
  const float* wpk;   // packed weights of the group
  const float* bpk;   // packed bias of the group (null: none)
  index_t bstride;    // bias lanes per block offset = oc0 (packed like oc)
  // Memory the next item will read and write (null: none), prefetched a
  // slice after each tile call.
  const float* next_in = nullptr;
  index_t next_in_floats = 0;
  const float* next_out = nullptr;
  index_t next_out_floats = 0;
};

constexpr index_t kRowBufFloats = 4096;  // row buffer: 16 KiB
constexpr index_t kMaxTaps = 121;        // KH * KW up to 11 x 11
constexpr index_t kFwdWeightBytes = 16384;  // packed weights per input-channel block

void conv_image(const ImageConv& p, const float* xin, index_t cs, index_t rs, float* y,
                index_t ldy, float* rowbuf) {
  const DirectKernels& k = *p.k;
  const int L = k.lanes;
  const int s = p.SW == 1 ? 0 : 1;
  index_t tap_off[kMaxTaps];
  for (index_t kh = 0; kh < p.KH; ++kh)
    for (index_t kw = 0; kw < p.KW; ++kw) tap_off[kh * p.KW + kw] = kh * p.DH * rs + kw * p.DW;
  // about one tile call per (block, row, 14 positions): spread the prefetches over them
  const index_t calls = index_t(p.blocks->size()) * p.OH * std::max<index_t>(1, p.OW / 14);
  Prefetcher pf_in, pf_out;
  if (p.next_in) pf_in.start(p.next_in, p.next_in_floats, calls);
  if (p.next_out) pf_out.start(p.next_out, p.next_out_floats, calls);
  for (const OcBlock& blk : *p.blocks) {
    const index_t ld = blk.nb * L;
    int max_ur = kMaxUR;
    while (max_ur > 1 && !k.fwd[s][blk.nb - 1][max_ur - 1]) --max_ur;
    // Rows narrower than the register tile go two at a time.
    const bool two_rows = p.OW < max_ur && p.OH > 1 && k.fwd2[s][blk.nb - 1][0];
    const std::vector<RowTile> tiles = plan_row(p.OW, two_rows ? max_ur / 2 : max_ur);
    index_t rows = std::max<index_t>(1, kRowBufFloats / (p.OW * ld));
    if (two_rows) rows = std::max<index_t>(2, rows & ~index_t(1));
    // Input channels in blocks whose packed weights stay in L1 (the tile
    // reads all of them for every group of positions).
    const index_t KHW = p.KH * p.KW;
    const index_t per_ch = KHW * ld * index_t(sizeof(float));
    const index_t ncb = std::max<index_t>(1, (p.Cin * per_ch + kFwdWeightBytes - 1) / kFwdWeightBytes);
    for (index_t oh0 = 0; oh0 < p.OH; oh0 += rows) {
      const index_t oh1 = std::min(p.OH, oh0 + rows);
      for (index_t cb = 0; cb < ncb; ++cb) {
        const index_t c0 = p.Cin * cb / ncb, c1 = p.Cin * (cb + 1) / ncb;
        for (index_t oh = oh0; oh < oh1;) {
          const int r = two_rows && oh + 1 < oh1 ? 2 : 1;
          for (const RowTile& t : tiles) {
            FwdTile a;
            a.x = xin + c0 * cs + oh * p.SH * rs + t.ow0 * p.SW;
            a.cs = cs;
            a.tap_off = tap_off;
            a.C = c1 - c0;
            a.KHW = KHW;
            a.w = p.wpk + blk.woff + c0 * KHW * ld;
            a.init = p.bpk ? p.bpk + blk.oc0 : nullptr;
            a.out = rowbuf + ((oh - oh0) * p.OW + t.ow0) * ld;
            a.ld_out = ld;
            a.rs_row = p.SH * rs;
            a.out_row = p.OW;
            a.accumulate = cb > 0;
            if (r == 2)
              k.fwd2[s][blk.nb - 1][t.ur - 1](a);
            else
              k.fwd[s][blk.nb - 1][t.ur - 1](a);
            pf_in.read_slice();
            pf_out.write_slice();
          }
          oh += r;
        }
      }
      k.transpose(rowbuf, ld, (oh1 - oh0) * p.OW, blk.noc, y + blk.oc0 * ldy + oh0 * p.OW, ldy);
    }
  }
}

// Packs w [OC, Cg, KH, KW] of every group into blocks [Cg][KH][KW][nb*L];
// with flip, packs the weights of the input-gradient convolution instead:
// roles of OC and Cg swapped, taps reversed (w'[c][o][kh][kw] = w[o][c][KH-1-kh][KW-1-kw]).
void pack_weights(const float* w, index_t G, index_t OCg, index_t Cg, index_t KH, index_t KW,
                  const std::vector<OcBlock>& blocks, int L, bool flip, float* dst,
                  index_t group_size) {
  const index_t KHW = KH * KW;
  const index_t in_ch = flip ? OCg : Cg;
  for (index_t gi = 0; gi < G; ++gi) {
    float* dg = dst + gi * group_size;
    for (const OcBlock& b : blocks) {
      const index_t lanes = b.nb * L;
      float* db = dg + b.woff;
      for (index_t i = 0; i < in_ch; ++i)
        for (index_t t = 0; t < KHW; ++t) {
          float* d = db + (i * KHW + t) * lanes;
          for (index_t o = 0; o < lanes; ++o) {
            const index_t oc = b.oc0 + o;
            if (o >= b.noc) {
              d[o] = 0.0f;
              continue;
            }
            // forward: out channel oc of the group, input channel i, tap t
            d[o] = flip ? w[((gi * OCg + i) * Cg + oc) * KHW + (KHW - 1 - t)]
                        : w[((gi * OCg + oc) * Cg + i) * KHW + t];
          }
        }
    }
  }
}

Buffer& shared_buffer(int which) {
  static thread_local Buffer b[8];
  return b[which];
}

// Stride-2 input gradient (dilation 1) by output phase: the dx rows h with
// (h + PH) % 2 == a receive only the taps kh = a + 2j, from dy row
// (h + PH - kh) / 2; so with h = 2m + h0, each of the four (row, column)
// phases is a stride-1 convolution of dy, padded by (Ja - 1 - e), with the
// flipped sub-kernel w[o][c][a + 2(Ja-1-j')][b + 2(Kb-1-k')], whose output
// [Cg][Hm][Wn] is then spread over dx at stride 2. No column buffer.
struct DxPhase {
  index_t h0 = 0, w0 = 0;     // first dx row / column of the phase
  index_t Hm = 0, Wn = 0;     // its rows and columns
  index_t Ja = 0, Kb = 0;     // taps of the sub-kernel
  index_t top = 0, left = 0;  // padding of dy (negative: cropped)
  std::vector<OcBlock> blocks;
  index_t gsize = 0, woff = 0;  // packed weights per group, offset of the phase's
};

// Sets up the four phases of geometry g (SH = SW = 2, DH = DW = 1) and packs
// their weights into dst (returns the floats needed when dst is null).
index_t plan_dx_phases(const ConvGeom& g, int L, int max_nb, const float* w, float* dst,
                       DxPhase* ph) {
  const index_t G = g.G, Cg = g.C / G, OCg = g.OC / G;
  index_t total = 0;
  for (int a = 0; a < 2; ++a)
    for (int b = 0; b < 2; ++b) {
      DxPhase& p = ph[2 * a + b];
      p.h0 = ((a - g.PH) % 2 + 2) % 2;
      p.w0 = ((b - g.PW) % 2 + 2) % 2;
      p.Hm = p.h0 < g.H ? (g.H - p.h0 + 1) / 2 : 0;
      p.Wn = p.w0 < g.W ? (g.W - p.w0 + 1) / 2 : 0;
      p.Ja = a < g.KH ? (g.KH - a + 1) / 2 : 0;
      p.Kb = b < g.KW ? (g.KW - b + 1) / 2 : 0;
      p.top = p.Ja - 1 - (p.h0 + g.PH - a) / 2;
      p.left = p.Kb - 1 - (p.w0 + g.PW - b) / 2;
      const index_t taps = p.Ja * p.Kb;
      if (taps == 0 || p.Hm == 0 || p.Wn == 0) continue;
      p.blocks = plan_blocks(Cg, L, max_nb, OCg * taps);
      p.gsize = packed_size(p.blocks, OCg * taps, L);
      p.woff = total;
      total += G * p.gsize;
      if (!dst) continue;
      // the phase's forward weights [G*Cg][OCg][Ja][Kb], then packed
      std::vector<float> wp(G * Cg * OCg * taps);
      for (index_t gi = 0; gi < G; ++gi)
        for (index_t c = 0; c < Cg; ++c)
          for (index_t o = 0; o < OCg; ++o)
            for (index_t j = 0; j < p.Ja; ++j)
              for (index_t q = 0; q < p.Kb; ++q)
                wp[(((gi * Cg + c) * OCg + o) * p.Ja + j) * p.Kb + q] =
                    w[(((gi * OCg + o) * Cg + c) * g.KH + a + 2 * (p.Ja - 1 - j)) * g.KW + b +
                      2 * (p.Kb - 1 - q)];
      pack_weights(wp.data(), G, Cg, OCg, p.Ja, p.Kb, p.blocks, L, false, dst + p.woff, p.gsize);
    }
  return total;
}

}  // namespace

const DirectKernels& kernels_for_active_isa() { return kernels_for(active_isa()); }

void pad_planes(const float* src, index_t C, index_t H, index_t W, index_t top, index_t left,
                index_t Hp, index_t Wp, float* dst) {
  const DirectKernels& k = kernels_for_active_isa();
  if (k.pad) {  // vector stores under AVX2/AVX-512
    k.pad(src, C, H, W, top, left, Hp, Wp, dst);
    return;
  }
  const index_t s0 = std::max<index_t>(0, -left), s1 = std::min<index_t>(W, Wp - left);
  const index_t r0 = std::max<index_t>(0, top), r1 = std::min<index_t>(Hp, H + top);
  const index_t d0 = s0 + left, d1 = s1 + left, n = s1 - s0;
  for (index_t c = 0; c < C; ++c) {
    const float* sc = src + c * H * W;
    float* dc = dst + c * Hp * Wp;
    if (r1 <= r0 || n <= 0) {
      for (index_t i = 0; i < Hp * Wp; ++i) dc[i] = 0.0f;
      continue;
    }
    // zeros up to the first copied element, then per row: the copy, and the
    // zeros between it and the next row's copy
    for (index_t i = 0; i < r0 * Wp + d0; ++i) dc[i] = 0.0f;
    for (index_t r = r0; r < r1; ++r) {
      float* d = dc + r * Wp + d0;
      const float* sr = sc + (r - top) * W + s0;
      for (index_t j = 0; j < n; ++j) d[j] = sr[j];
      const index_t gap_end = r + 1 < r1 ? (r + 1) * Wp + d0 : Hp * Wp;
      for (index_t i = r * Wp + d1; i < gap_end; ++i) dc[i] = 0.0f;
    }
  }
}

float row_sum(const float* r, index_t n) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  index_t j = 0;
  for (; j + 8 <= n; j += 8)
    for (int l = 0; l < 8; ++l) acc[l] += r[j + l];
  for (int l = 0; j < n; ++j, ++l) acc[l] += r[j];
  return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

bool direct_supported(const ConvGeom& g) {
  const DirectKernels& k = kernels_for(active_isa());
  return k.lanes != 0 && (g.SW == 1 || g.SW == 2) && g.KH * g.KW <= kMaxTaps;
}

void direct_forward(const float* x, const float* w, const float* bias, const ConvGeom& g,
                    float* y) {
  const DirectKernels& k = kernels_for(active_isa());
  const int L = k.lanes;
  const index_t G = g.G, Cg = g.C / G, OCg = g.OC / G, KHW = g.KH * g.KW;
  const index_t OH = g.OH(), OW = g.OW(), OHW = OH * OW;
  const std::vector<OcBlock> blocks = plan_blocks(OCg, L, fwd_max_nb(k), Cg * KHW);
  const index_t gsize = packed_size(blocks, Cg * KHW, L);
  const index_t bsize = blocks.back().oc0 + blocks.back().nb * L;
  float* wpk = shared_buffer(0).get<float>(G * gsize + G * bsize);
  float* bpk = wpk + G * gsize;
  pack_weights(w, G, OCg, Cg, g.KH, g.KW, blocks, L, false, wpk, gsize);
  for (index_t gi = 0; gi < G; ++gi)
    for (index_t o = 0; o < bsize; ++o)
      bpk[gi * bsize + o] = bias && o < OCg ? bias[gi * OCg + o] : 0.0f;

  const bool pad = g.PH > 0 || g.PW > 0;
  const index_t Hp = pad ? (OH - 1) * g.SH + g.DH * (g.KH - 1) + 1 : g.H;
  const index_t Wp = pad ? (OW - 1) * g.SW + g.DW * (g.KW - 1) + 1 : g.W;
  const index_t items = g.N * G;
  const double work = 2.0 * double(g.N) * double(g.OC) * double(Cg * KHW) * double(OHW);
  const int threads = work < 2e5 ? 1 : get_num_threads();
  parallel_for(items, threads, [&](index_t b, index_t e) {
    float* xpad = pad ? shared_buffer(1).get<float>(Cg * Hp * Wp) : nullptr;
    float* rowbuf = shared_buffer(2).get<float>(std::max(kRowBufFloats, 2 * OW * fwd_max_nb(k) * L));
    for (index_t it = b; it < e; ++it) {
      const index_t n = it / G, gi = it % G;
      const float* xi = x + (n * g.C + gi * Cg) * g.H * g.W;
      if (pad) pad_planes(xi, Cg, g.H, g.W, g.PH, g.PW, Hp, Wp, xpad);
      ImageConv p{&k, Cg, g.KH, g.KW, g.DH, g.DW, g.SH, g.SW, OH, OW, &blocks,
                  wpk + gi * gsize, bpk + gi * bsize, 0};
      if (it + 1 < e) {
        const index_t nn = (it + 1) / G, ng = (it + 1) % G;
        p.next_in = x + (nn * g.C + ng * Cg) * g.H * g.W;
        p.next_in_floats = Cg * g.H * g.W;
        p.next_out = y + (nn * g.OC + ng * OCg) * OHW;
        p.next_out_floats = OCg * OHW;
      }
      conv_image(p, pad ? xpad : xi, Hp * Wp, Wp, y + (n * g.OC + gi * OCg) * OHW, OHW,
                 rowbuf);
    }
  });
}

bool direct_dx_supported(const ConvGeom& g) {
  // Stride 2 by phases: measured faster than im2col + GEMM under AVX-512 for
  // kernels of at least 2x2 (3x3: 0.91-0.97x the backward's time), slower
  // under AVX2 (1.02-1.05x) and for 1x1 kernels, whose three empty phases
  // leave one small product (1.25x).
  const bool phases = g.SH == 2 && g.SW == 2 && g.DH == 1 && g.DW == 1 && g.KH > 1 &&
                      g.KW > 1 && kernels_for(active_isa()).lanes == 16;
  return (g.SH == 1 && g.SW == 1) || phases;
}

void direct_backward(const float* x, const float* w, const float* dy, const ConvGeom& g,
                     float* dx, float* dw, float* db, float beta) {
  const DirectKernels& k = kernels_for(active_isa());
  const int L = k.lanes;
  const index_t G = g.G, Cg = g.C / G, OCg = g.OC / G, KHW = g.KH * g.KW, Kg = Cg * KHW;
  const index_t OH = g.OH(), OW = g.OW(), OHW = OH * OW, HW = g.H * g.W;
  const bool want_w = dw != nullptr, want_b = db != nullptr;
  const bool dx_direct = dx != nullptr && direct_dx_supported(g);

  // dW: partial sums per chunk of images, packed [group][block][tap][nb*L].
  const std::vector<OcBlock> wblocks = plan_blocks(OCg, L, dw_max_nb(k), Kg);
  const index_t gsize_w = packed_size(wblocks, Kg, L);
  const index_t ldt = wblocks.back().oc0 + wblocks.back().nb * L;  // dyT row
  const index_t nchunks = (g.N + kConvChunk - 1) / kConvChunk;
  const index_t psize = (want_w ? G * gsize_w : 0) + (want_b ? g.OC : 0);
  float* partials = psize ? shared_buffer(3).get<float>(psize * nchunks) : nullptr;

  const bool pad = g.PH > 0 || g.PW > 0;
  const index_t Hp = pad ? (OH - 1) * g.SH + g.DH * (g.KH - 1) + 1 : g.H;
  const index_t Wp = pad ? (OW - 1) * g.SW + g.DW * (g.KW - 1) + 1 : g.W;
  std::vector<index_t> tap_off(std::max<index_t>(Kg, 1));
  for (index_t c = 0; c < Cg; ++c)
    for (index_t kh = 0; kh < g.KH; ++kh)
      for (index_t kw = 0; kw < g.KW; ++kw)
        tap_off[(c * g.KH + kh) * g.KW + kw] = c * Hp * Wp + kh * g.DH * Wp + kw * g.DW;

  // dX (stride 1): the convolution of dy, padded by D*(K-1) - P (negative:
  // cropped), with the flipped weights; output channels = the group's inputs.
  const std::vector<OcBlock> xblocks = plan_blocks(Cg, L, fwd_max_nb(k), OCg * KHW);
  const index_t gsize_x = packed_size(xblocks, OCg * KHW, L);
  const index_t top = g.DH * (g.KH - 1) - g.PH, left = g.DW * (g.KW - 1) - g.PW;
  const index_t Hq = g.H + g.DH * (g.KH - 1), Wq = g.W + g.DW * (g.KW - 1);
  float* wflip = nullptr;
  const bool dx_phases = dx_direct && g.SH == 2;
  DxPhase phases[4];
  if (dx_phases) {
    const index_t need = plan_dx_phases(g, L, fwd_max_nb(k), w, nullptr, phases);
    wflip = shared_buffer(4).get<float>(need);
    plan_dx_phases(g, L, fwd_max_nb(k), w, wflip, phases);
  } else if (dx_direct) {
    wflip = shared_buffer(4).get<float>(G * gsize_x);
    pack_weights(w, G, OCg, Cg, g.KH, g.KW, xblocks, L, true, wflip, gsize_x);
  }

  const double work = 4.0 * double(g.N) * double(g.OC) * double(Kg) * double(OHW);
  const int threads = work < 2e5 ? 1 : get_num_threads();
  // dW reads the padded images and transposed gradients of up to a chunk of
  // images per tile call, so the tile's accumulators go to memory once per
  // chunk rather than once per image (batches bounded to ~1 MiB of scratch).
  const index_t xsz = pad ? Cg * Hp * Wp : 0, dsz = OHW * ldt;
  const index_t batch = std::max<index_t>(1, std::min<index_t>(kConvChunk, (1 << 18) / (xsz + dsz)));
  index_t folded = 1;  // chunks [0, folded) are summed into chunk 0's partial
  parallel_for(nchunks, threads, [&](index_t cb, index_t ce) {
    float* xpad = want_w && pad ? shared_buffer(1).get<float>(batch * xsz) : nullptr;
    float* dyt = want_w ? shared_buffer(5).get<float>(batch * dsz) : nullptr;
    float* dypad = dx_direct ? shared_buffer(6).get<float>(OCg * Hq * Wq) : nullptr;
    float* rowbuf = dx_direct
        ? shared_buffer(2).get<float>(std::max(kRowBufFloats, 2 * g.W * fwd_max_nb(k) * L))
        : nullptr;
    if (want_w && ldt > OCg)  // lanes past the last channel stay zero
      for (index_t p = 0; p < batch * OHW; ++p)
        std::memset(dyt + p * ldt + OCg, 0, sizeof(float) * (ldt - OCg));
    for (index_t ch = cb; ch < ce; ++ch) {
      float* part = partials + ch * psize;
      const index_t n0 = ch * kConvChunk, n1 = std::min(g.N, n0 + kConvChunk);
      // The thread that starts at chunk 0 folds each later chunk of its own
      // into chunk 0's partial: in the tile's final store when one tile call
      // covers the chunk (R + chunk sum: the fold's additions, in its order).
      const bool fold_in_tile = want_w && cb == 0 && ch > 0 && n1 - n0 <= batch;
      for (index_t gi = 0; gi < G; ++gi) {
        for (index_t nb0 = n0; want_w && nb0 < n1; nb0 += batch) {
          const index_t nb1 = std::min(n1, nb0 + batch);
          for (index_t n = nb0; n < nb1; ++n) {
            const float* xi = x + (n * g.C + gi * Cg) * HW;
            if (pad) pad_planes(xi, Cg, g.H, g.W, g.PH, g.PW, Hp, Wp, xpad + (n - nb0) * xsz);
            k.transpose(dy + (n * g.OC + gi * OCg) * OHW, OHW, OCg, OHW,
                        dyt + (n - nb0) * dsz, ldt);
          }
          const float* xb = pad ? xpad : x + (nb0 * g.C + gi * Cg) * HW;
          const int s = g.SW == 1 ? 0 : 1;
          for (const OcBlock& blk : wblocks) {
            const int max_t = std::min(kMaxT, k.max_acc / blk.nb);
            const index_t ntiles = (Kg + max_t - 1) / max_t;
            for (index_t tt = 0; tt < ntiles; ++tt) {
              const index_t t0 = Kg * tt / ntiles, t1 = Kg * (tt + 1) / ntiles;
              DwTile a;
              a.x = xb;
              a.tap_off = tap_off.data() + t0;
              a.rs_pos = g.SH * Wp;
              a.OH = OH;
              a.OW = OW;
              a.dyt = dyt + blk.oc0;
              a.ld_dyt = ldt;
              a.acc = (fold_in_tile ? partials : part) + gi * gsize_w + blk.woff + t0 * blk.nb * L;
              a.zero_start = nb0 == n0;
              a.add_to = fold_in_tile;
              a.nimg = nb1 - nb0;
              a.xs = pad ? xsz : g.C * HW;
              a.ds = dsz;
              k.dw[s][blk.nb - 1][t1 - t0 - 1](a);
            }
          }
        }
        for (index_t n = n0; n < n1; ++n) {
          const float* dyi = dy + (n * g.OC + gi * OCg) * OHW;
          if (want_b) {
            float* pb = part + (want_w ? G * gsize_w : 0) + gi * OCg;
            for (index_t o = 0; o < OCg; ++o) {
              const float sum = row_sum(dyi + o * OHW, OHW);
              pb[o] = n == n0 ? sum : pb[o] + sum;
            }
          }
          if (dx_phases) {
            float* dxi = dx + (n * g.C + gi * Cg) * HW;
            float* out = shared_buffer(7).get<float>(Cg * ((g.H + 1) / 2) * ((g.W + 1) / 2));
            for (const DxPhase& ph : phases) {
              if (ph.Hm == 0 || ph.Wn == 0) continue;  // (KH, KW >= 2: every phase has taps)
              const index_t Hs = ph.Hm + ph.Ja - 1, Ws = ph.Wn + ph.Kb - 1;
              pad_planes(dyi, OCg, OH, OW, ph.top, ph.left, Hs, Ws, dypad);
              ImageConv p{&k, OCg, ph.Ja, ph.Kb, 1, 1, 1, 1, ph.Hm, ph.Wn, &ph.blocks,
                          wflip + ph.woff + gi * ph.gsize, nullptr, 0};
              conv_image(p, dypad, Hs * Ws, Ws, out, ph.Hm * ph.Wn, rowbuf);
              for (index_t c = 0; c < Cg; ++c)
                for (index_t m = 0; m < ph.Hm; ++m) {
                  const float* src = out + (c * ph.Hm + m) * ph.Wn;
                  float* d = dxi + c * HW + (2 * m + ph.h0) * g.W + ph.w0;
                  for (index_t q = 0; q < ph.Wn; ++q) d[2 * q] = src[q];
                }
            }
          } else if (dx_direct) {
            pad_planes(dyi, OCg, OH, OW, top, left, Hq, Wq, dypad);
            ImageConv p{&k, OCg, g.KH, g.KW, g.DH, g.DW, 1, 1, g.H, g.W, &xblocks,
                        wflip + gi * gsize_x, nullptr, 0};
            if (n + 1 < g.N) {
              p.next_in = dy + ((n + 1) * g.OC + gi * OCg) * OHW;
              p.next_in_floats = OCg * OHW;
              p.next_out = dx + ((n + 1) * g.C + gi * Cg) * HW;
              p.next_out_floats = Cg * HW;
            }
            conv_image(p, dypad, Hq * Wq, Wq, dx + (n * g.C + gi * Cg) * HW, HW, rowbuf);
          }
        }
      }
      // (otherwise here, while the chunk's partial is in cache; db always);
      // the fold below takes the remaining chunks.
      if (cb == 0 && ch > 0) {
        const float* src = partials + ch * psize;
        for (index_t i = fold_in_tile ? G * gsize_w : 0; i < psize; ++i) partials[i] += src[i];
      }
      if (cb == 0) folded = ch + 1;
    }
  });

  if (psize == 0) return;
  // Fold the remaining chunk partials in chunk order into chunk 0's
  // (streaming over contiguous spans: a strided walk across the chunks missed
  // the TLB and the caches on every element), then scatter to dw [OC, Cg, KH,
  // KW] and db.
  const int fold_threads =
      double(psize) * double(nchunks - folded) < 1e5 ? 1 : get_num_threads();
  if (nchunks > folded)
    parallel_for((psize + 63) / 64, fold_threads, [&](index_t b, index_t e) {
      const index_t i0 = b * 64, i1 = std::min(psize, e * 64);
      for (index_t ch = folded; ch < nchunks; ++ch) {
        const float* src = partials + ch * psize;
        for (index_t i = i0; i < i1; ++i) partials[i] += src[i];
      }
    });
  // One output channel per item: its taps are strided by nb*L in the packed
  // partial and contiguous in dw [OC, Cg*KH*KW]; db follows the channels.
  const index_t nrows = g.OC + (want_b ? 1 : 0);
  parallel_for(nrows, double(psize) < 1e5 ? 1 : get_num_threads(), [&](index_t b, index_t e) {
    for (index_t oc = b; oc < e; ++oc) {
      if (oc == g.OC) {  // the bias row
        const float* src = partials + (want_w ? G * gsize_w : 0);
        for (index_t i = 0; i < g.OC; ++i) db[i] = beta == 0.0f ? src[i] : beta * db[i] + src[i];
        continue;
      }
      if (!want_w) continue;
      const index_t gi = oc / OCg, o = oc % OCg;
      const OcBlock* blk = &wblocks[0];
      for (const OcBlock& bb : wblocks)
        if (o >= bb.oc0) blk = &bb;
      const index_t step = blk->nb * L;
      const float* src = partials + gi * gsize_w + blk->woff + (o - blk->oc0);
      float* dst = dw + oc * Kg;
      if (beta == 0.0f)
        for (index_t t = 0; t < Kg; ++t) dst[t] = src[t * step];
      else
        for (index_t t = 0; t < Kg; ++t) dst[t] = beta * dst[t] + src[t * step];
    }
  });
}

}  // namespace conv_detail
}  // namespace neuropil
