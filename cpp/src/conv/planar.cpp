// Driver of the planar tiles (float32, AVX2 or AVX-512; tiles in direct.h,
// math in neuropil/conv.h): output positions in the vector lanes, for the
// stride-1 convolutions whose channels would leave most lanes of the
// channels-in-lanes tiles empty.
//
// A plane of one image and group is copied once into a zero-padded plane of
// row stride Wp = OW + DW*(KW-1); output position (oh, ow) is the flat
// position p = oh*Wp + ow, and tap (kh, kw) reads p + kh*DH*Wp + kw*DW, so
// each tap of L positions is one vector load. The Wp - OW columns past the
// output width are computed and dropped when the result is copied out.
//
// Forward: tiles of up to kMaxPlNo output channels x V vectors of positions.
// Input gradient (stride 1): the forward of the padded output gradient with
// the flipped weights. Weight gradient (one input channel per group, as in a
// depthwise layer): per output channel, T taps x the lanes summed over the
// flat positions into vector partials per chunk of kConvChunk images; the
// partials are folded in chunk order and their lanes in a fixed order, so
// dW is bitwise identical for any thread count.
#include <algorithm>
#include <cstring>
#include <vector>

#include "direct.h"
#include "neuropil/conv.h"
#include "neuropil/parallel.h"
#include "scratch.h"

namespace neuropil {
namespace conv_detail {
namespace {

Buffer& planar_buffer(int which) {
  static thread_local Buffer b[5];
  return b[which];
}

constexpr index_t kMaxPlanarTaps = 121;

// One stride-1 convolution of one image and group in planar form.
struct PlanarConv {
  const DirectKernels* k;
  index_t Cin, Cout, KH, KW, DH, DW, OH, OW;
  index_t Hp() const { return OH + DH * (KH - 1); }
  index_t Wp() const { return OW + DW * (KW - 1); }
  index_t plane() const { return Hp() * Wp(); }
  index_t nvec() const { return (OH * Wp() + k->lanes - 1) / k->lanes; }
  // Padded planes: Cin planes plus L floats of slack read by the last vector.
  index_t padded_size() const { return Cin * plane() + k->lanes; }
};

int largest(const pl_fwd_tile_fn* row, int max) {
  int v = max;
  while (v > 1 && !row[v - 1]) --v;
  return v;
}

// y [Cout][OH*OW] (+ bias) = conv of the padded planes xin (plane stride
// pc.plane(), with slack) with wpk [Cout][Cin][KH*KW]; stage holds
// kMaxPlNo * nvec * L floats.
void planar_image(const PlanarConv& pc, const float* xin, const float* wpk, const float* bias,
                  float* y, float* stage) {
  const DirectKernels& k = *pc.k;
  const int L = k.lanes;
  const index_t KHW = pc.KH * pc.KW, Wp = pc.Wp(), nvec = pc.nvec(), ldo = nvec * L;
  index_t tap_off[kMaxPlanarTaps];
  for (index_t kh = 0; kh < pc.KH; ++kh)
    for (index_t kw = 0; kw < pc.KW; ++kw) tap_off[kh * pc.KW + kw] = kh * pc.DH * Wp + kw * pc.DW;
  const index_t nblk = (pc.Cout + kMaxPlNo - 1) / kMaxPlNo;
  for (index_t bi = 0; bi < nblk; ++bi) {
    const index_t o0 = pc.Cout * bi / nblk, o1 = pc.Cout * (bi + 1) / nblk;
    const int no = int(o1 - o0);
    const int vmax = largest(k.pl_fwd[no - 1], kMaxPlV);
    const index_t ntiles = (nvec + vmax - 1) / vmax;
    for (index_t ti = 0; ti < ntiles; ++ti) {
      const index_t v0 = nvec * ti / ntiles, v1 = nvec * (ti + 1) / ntiles;
      PlFwdTile a;
      a.x = xin + v0 * L;
      a.cs = pc.plane();
      a.tap_off = tap_off;
      a.C = pc.Cin;
      a.KHW = KHW;
      a.w = wpk + o0 * pc.Cin * KHW;
      a.wo = pc.Cin * KHW;
      a.init = bias ? bias + o0 : nullptr;
      a.out = stage + v0 * L;
      a.ldo = ldo;
      k.pl_fwd[no - 1][v1 - v0 - 1](a);
    }
    for (index_t o = 0; o < no; ++o)
      k.copy_rows(stage + o * ldo, Wp, pc.OH, pc.OW, y + (o0 + o) * pc.OH * pc.OW, pc.OW);
  }
}

bool planar_geometry(const ConvGeom& g) {
  const DirectKernels& k = kernels_for_active_isa();
  return k.lanes != 0 && k.pl_fwd[0][0] != nullptr && g.SH == 1 && g.SW == 1 &&
         g.KH * g.KW <= kMaxPlanarTaps;
}

double conv_work(const ConvGeom& g) {
  return 2.0 * double(g.N) * double(g.OC) * double(g.C / g.G * g.KH * g.KW) *
         double(g.OH() * g.OW());
}

}  // namespace

bool planar_forward_supported(const ConvGeom& g) {
  return planar_geometry(g) && 2 * (g.OC / g.G) < kernels_for_active_isa().lanes;
}
bool planar_dx_supported(const ConvGeom& g) {
  return planar_geometry(g) && 2 * (g.C / g.G) < kernels_for_active_isa().lanes;
}
bool planar_dw_supported(const ConvGeom& g) {
  return planar_geometry(g) && g.C == g.G && 2 * (g.OC / g.G) < kernels_for_active_isa().lanes;
}

void planar_forward(const float* x, const float* w, const float* bias, const ConvGeom& g,
                    float* y) {
  const DirectKernels& k = kernels_for_active_isa();
  const index_t G = g.G, Cg = g.C / G, OCg = g.OC / G, KHW = g.KH * g.KW;
  const PlanarConv pc{&k, Cg, OCg, g.KH, g.KW, g.DH, g.DW, g.OH(), g.OW()};
  const index_t OHW = pc.OH * pc.OW;
  const int threads = conv_work(g) < 2e5 ? 1 : get_num_threads();
  parallel_for(g.N * G, threads, [&](index_t b, index_t e) {
    float* xpad = planar_buffer(0).get<float>(pc.padded_size());
    float* stage = planar_buffer(1).get<float>(kMaxPlNo * pc.nvec() * k.lanes);
    std::memset(xpad + Cg * pc.plane(), 0, sizeof(float) * k.lanes);
    for (index_t it = b; it < e; ++it) {
      const index_t n = it / G, gi = it % G;
      pad_planes(x + (n * g.C + gi * Cg) * g.H * g.W, Cg, g.H, g.W, g.PH, g.PW, pc.Hp(), pc.Wp(),
                 xpad);
      planar_image(pc, xpad, w + gi * OCg * Cg * KHW, bias ? bias + gi * OCg : nullptr,
                   y + (n * g.OC + gi * OCg) * OHW, stage);
    }
  });
}

void planar_backward(const float* x, const float* w, const float* dy, const ConvGeom& g,
                     float* dx, float* dw, float* db, float beta) {
  const DirectKernels& k = kernels_for_active_isa();
  const int L = k.lanes;
  const index_t G = g.G, Cg = g.C / G, OCg = g.OC / G, KHW = g.KH * g.KW;
  const index_t OH = g.OH(), OW = g.OW(), OHW = OH * OW, HW = g.H * g.W;
  const int threads = 2.0 * conv_work(g) < 2e5 ? 1 : get_num_threads();

  if (dx) {
    // The input gradient: Cg outputs of size H x W from the OCg planes of dy
    // padded by D*(K-1) - P (negative: cropped), flipped weights [Cg][OCg][KHW].
    const PlanarConv pc{&k, OCg, Cg, g.KH, g.KW, g.DH, g.DW, g.H, g.W};
    const index_t top = g.DH * (g.KH - 1) - g.PH, left = g.DW * (g.KW - 1) - g.PW;
    std::vector<float> wf(G * Cg * OCg * KHW);
    for (index_t gi = 0; gi < G; ++gi)
      for (index_t c = 0; c < Cg; ++c)
        for (index_t o = 0; o < OCg; ++o)
          for (index_t t = 0; t < KHW; ++t)
            wf[((gi * Cg + c) * OCg + o) * KHW + t] =
                w[((gi * OCg + o) * Cg + c) * KHW + (KHW - 1 - t)];
    parallel_for(g.N * G, threads, [&](index_t b, index_t e) {
      float* dypad = planar_buffer(0).get<float>(pc.padded_size());
      float* stage = planar_buffer(1).get<float>(kMaxPlNo * pc.nvec() * L);
      std::memset(dypad + OCg * pc.plane(), 0, sizeof(float) * L);
      for (index_t it = b; it < e; ++it) {
        const index_t n = it / G, gi = it % G;
        pad_planes(dy + (n * g.OC + gi * OCg) * OHW, OCg, OH, OW, top, left, pc.Hp(), pc.Wp(),
                   dypad);
        planar_image(pc, dypad, wf.data() + gi * Cg * OCg * KHW, nullptr,
                     dx + (n * g.C + gi * Cg) * HW, stage);
      }
    });
  }
  if (!dw && !db) return;

  // dW and db, one input channel per group: chunk partials [OC][KHW][L] and [OC].
  const PlanarConv pc{&k, 1, OCg, g.KH, g.KW, g.DH, g.DW, OH, OW};
  const index_t Wp = pc.Wp(), nvec = pc.nvec(), ldy = nvec * L;
  const index_t wpart = dw ? g.OC * KHW * L : 0;
  const index_t psize = wpart + (db ? g.OC : 0);
  const index_t nchunks = (g.N + kConvChunk - 1) / kConvChunk;
  float* partials = planar_buffer(2).get<float>(psize * nchunks);
  index_t tap_off[kMaxPlanarTaps];
  for (index_t kh = 0; kh < g.KH; ++kh)
    for (index_t kw = 0; kw < g.KW; ++kw) tap_off[kh * g.KW + kw] = kh * g.DH * Wp + kw * g.DW;
  const int max_no = k.pl_dw[1][0] ? 2 : 1;
  parallel_for(nchunks, threads, [&](index_t cb, index_t ce) {
    float* xpad = dw ? planar_buffer(0).get<float>(pc.padded_size()) : nullptr;
    float* dyf = dw ? planar_buffer(3).get<float>(max_no * ldy) : nullptr;
    if (dw) {
      std::memset(xpad + pc.plane(), 0, sizeof(float) * L);
      std::memset(dyf, 0, sizeof(float) * max_no * ldy);  // dropped columns and tail stay 0
    }
    for (index_t ch = cb; ch < ce; ++ch) {
      float* part = partials + ch * psize;
      const index_t n0 = ch * kConvChunk, n1 = std::min(g.N, n0 + kConvChunk);
      for (index_t n = n0; n < n1; ++n) {
        for (index_t gi = 0; gi < G; ++gi) {
          const float* dyi = dy + (n * g.OC + gi * OCg) * OHW;
          if (db)
            for (index_t o = 0; o < OCg; ++o) {
              const float s = row_sum(dyi + o * OHW, OHW);
              float& pb = part[wpart + gi * OCg + o];
              pb = n == n0 ? s : pb + s;
            }
          if (!dw) continue;
          pad_planes(x + (n * g.C + gi) * HW, 1, g.H, g.W, g.PH, g.PW, pc.Hp(), Wp, xpad);
          for (index_t o0 = 0; o0 < OCg; o0 += max_no) {
            const int no = int(std::min<index_t>(max_no, OCg - o0));
            for (index_t o = 0; o < no; ++o)
              k.copy_rows(dyi + (o0 + o) * OHW, OW, OH, OW, dyf + o * ldy, Wp);
            const int max_t = [&] {
              int t = kMaxT;
              while (t > 1 && !k.pl_dw[no - 1][t - 1]) --t;
              return t;
            }();
            const index_t ntiles = (KHW + max_t - 1) / max_t;
            for (index_t tt = 0; tt < ntiles; ++tt) {
              const index_t t0 = KHW * tt / ntiles, t1 = KHW * (tt + 1) / ntiles;
              PlDwTile a;
              a.x = xpad;
              a.tap_off = tap_off + t0;
              a.dy = dyf;
              a.ldy = ldy;
              a.nvec = nvec;
              a.acc = part + ((gi * OCg + o0) * KHW + t0) * L;
              a.ldacc = KHW * L;
              a.zero_start = n == n0;
              k.pl_dw[no - 1][t1 - t0 - 1](a);
            }
          }
        }
      }
    }
  });

  // Fold: chunks in order (lane by lane), then the lanes pairwise.
  const index_t nw = dw ? g.OC * KHW : 0, nout = nw + (db ? g.OC : 0);
  parallel_for(nout, nout * nchunks * L < 100000 ? 1 : get_num_threads(),
               [&](index_t b, index_t e) {
    float lanes[16];
    for (index_t i = b; i < e; ++i) {
      float s;
      if (i < nw) {
        for (int j = 0; j < L; ++j) {
          float v = partials[i * L + j];
          for (index_t ch = 1; ch < nchunks; ++ch) v += partials[ch * psize + i * L + j];
          lanes[j] = v;
        }
        for (int width = L / 2; width >= 1; width /= 2)
          for (int j = 0; j < width; ++j) lanes[j] += lanes[j + width];
        s = lanes[0];
      } else {
        const index_t src = wpart + (i - nw);
        s = partials[src];
        for (index_t ch = 1; ch < nchunks; ++ch) s += partials[ch * psize + src];
      }
      float* dst = i < nw ? dw + i : db + (i - nw);
      *dst = beta == 0.0f ? s : beta * *dst + s;
    }
  });
}

}  // namespace conv_detail
}  // namespace neuropil
