// Batch normalisation forward and backward (math in neuropil/norm.h).
//
// Reductions: each channel's M = N*L elements are cut into fixed chunks (a block of
// batch rows, or a piece of one long row) that depend only on (N, C, L). A work unit is
// one chunk of a block of channels; units run on any thread, each writes its own
// partials, and every channel folds its chunk partials in chunk order, in double. So
// the bits never depend on the thread count. Within a unit (at most 4096 elements of a
// channel) sums are taken in T, in a fixed order: over 16 lanes for long rows, or per
// row position for short rows (see Plan), then folded in order in double.
//
// Forward statistics take two passes over a unit while it is in cache: the chunk sum
// gives a centre m, then sum (x - m) and sum (x - m)^2 give the chunk's exact mean and
// M2 (shifted data: no cancellation), merged across chunks as Chan et al.
// Elementwise passes (normalise, dx) touch every element once; parallel over rows.
#include "neuropil/norm.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "neuropil/parallel.h"

namespace neuropil {
namespace {

constexpr index_t kChunk = 4096;       // long rows: at most this many elements of a channel per chunk
constexpr index_t kPlanarMinL = 64;    // rows this long are reduced one channel at a time
constexpr index_t kBlockElems = 1024;  // short rows: a unit's channel block spans <= this per row
constexpr index_t kMaxBlockChannels = 64;
constexpr index_t kUnitElems = 16384;  // short rows: elements per unit (a pass-2 re-read from cache)
constexpr int kLanes = 16;

// Memory-bound passes: a second thread pays off only on large tensors (waking the pool
// costs microseconds, and milliseconds when the host has descheduled a vCPU).
int threads_for(index_t work) { return work >= (index_t(1) << 16) ? get_num_threads() : 1; }

// The fixed chunking of a channel's elements, and the work units over it.
// Long rows (L >= kPlanarMinL, "planar"): a unit is one channel of one chunk (several
// whole rows, or one piece of a row longer than kChunk), summed over 16 lanes.
// Short rows: a unit is a block of channels whose per-row span (cblock * L elements) is
// contiguous; every row of the chunk is added elementwise into a span-sized
// accumulator, whose L entries per channel are folded at the end of the unit.
struct Plan {
  index_t N, C, L;
  bool planar;
  index_t rows;    // batch rows per chunk
  index_t pieces;  // pieces per row (> 1 only when L > kChunk)
  index_t chunks;  // chunks per channel
  index_t cblock;  // channels per unit
  index_t cblocks;

  Plan(index_t n, index_t c, index_t l) : N(n), C(c), L(l), planar(l >= kPlanarMinL) {
    pieces = 1;
    if (planar) {
      cblock = 1;
      if (L > kChunk) {
        rows = 1;
        pieces = (L + kChunk - 1) / kChunk;
      } else {
        rows = std::max<index_t>(1, kChunk / L);
      }
    } else {
      cblock = std::max<index_t>(1, std::min(kMaxBlockChannels, kBlockElems / L));
      rows = std::max<index_t>(1, kUnitElems / (cblock * L));
    }
    cblocks = (C + cblock - 1) / cblock;
    chunks = (N + rows - 1) / rows * pieces;
  }
  index_t units() const { return chunks * cblocks; }
  // Chunk k: batch rows [n0, n1), positions [l0, l1) of each row.
  void chunk(index_t k, index_t* n0, index_t* n1, index_t* l0, index_t* l1) const {
    const index_t rb = k / pieces, p = k % pieces;
    *n0 = rb * rows;
    *n1 = std::min(N, *n0 + rows);
    *l0 = pieces > 1 ? p * kChunk : 0;
    *l1 = pieces > 1 ? std::min(L, *l0 + kChunk) : L;
  }
  index_t count(index_t k) const {
    index_t n0, n1, l0, l1;
    chunk(k, &n0, &n1, &l0, &l1);
    return (n1 - n0) * (l1 - l0);
  }
};

// kLanes values of T as one GCC/Clang vector: lane-wise arithmetic in the order the
// source gives, lowered to whatever SIMD width the build targets (SSE2 here), so the
// lane sums are the same numbers on every ISA.
template <typename T>
struct LanesOf;
template <>
struct LanesOf<float> {
  typedef float type __attribute__((vector_size(kLanes * sizeof(float))));
};
template <>
struct LanesOf<double> {
  typedef double type __attribute__((vector_size(kLanes * sizeof(double))));
};
template <typename T>
using Lanes = typename LanesOf<T>::type;

template <typename T>
inline void load(Lanes<T>& v, const T* p) { std::memcpy(&v, p, sizeof(v)); }
template <typename T>
inline void store(T* p, const Lanes<T>& v) { std::memcpy(p, &v, sizeof(v)); }

// Reduction ops, two forms:
//   seg(c, off, len, acc): one channel's contiguous run x[off, off + len) into kLanes
//     lanes (lane l takes elements l, l + kLanes, ...; the tail goes to the first lanes);
//   span(off, len, ctr, acc): a contiguous span of a short-row block, elementwise into
//     acc[k][0, len); ctr[i] is the per-channel constant of element i.
template <typename T>
struct SumOp {  // sum x
  static constexpr int K = 1;
  static constexpr bool kCentre = false;
  const T* x;
  const T* centre(index_t) const { return nullptr; }
  void seg(index_t, index_t off, index_t len, T (&acc)[K][kLanes]) const {
    const T* xp = x + off;
    Lanes<T> a, v;
    load(a, acc[0]);
    index_t j = 0;
    for (; j + kLanes <= len; j += kLanes) {
      load(v, xp + j);
      a += v;
    }
    store(acc[0], a);
    for (int q = 0; j < len; ++j, ++q) acc[0][q] += xp[j];
  }
  void span(index_t off, index_t len, const T*, T* const* acc) const {
    const T* __restrict xp = x + off;
    T* __restrict a = acc[0];
    for (index_t i = 0; i < len; ++i) a[i] += xp[i];
  }
};
template <typename T>
struct ShiftedOp {  // sum (x - m), sum (x - m)^2 about a per-channel centre m
  static constexpr int K = 2;
  static constexpr bool kCentre = true;
  const T* x;
  const T* m;
  const T* centre(index_t c) const { return m + c; }
  void seg(index_t c, index_t off, index_t len, T (&acc)[K][kLanes]) const {
    const T* xp = x + off;
    const T mc = m[c];
    Lanes<T> a, b, v;
    load(a, acc[0]);
    load(b, acc[1]);
    index_t j = 0;
    for (; j + kLanes <= len; j += kLanes) {
      load(v, xp + j);
      v -= mc;
      a += v;
      b += v * v;
    }
    store(acc[0], a);
    store(acc[1], b);
    for (int q = 0; j < len; ++j, ++q) {
      const T d = xp[j] - mc;
      acc[0][q] += d;
      acc[1][q] += d * d;
    }
  }
  void span(index_t off, index_t len, const T* ctr, T* const* acc) const {
    const T* __restrict xp = x + off;
    const T* __restrict cp = ctr;
    T* __restrict a = acc[0];
    T* __restrict b = acc[1];
    for (index_t i = 0; i < len; ++i) {
      const T d = xp[i] - cp[i];
      a[i] += d;
      b[i] += d * d;
    }
  }
};
template <typename T>
struct GradOp {  // sum dy, sum dy * (x - mean)
  static constexpr int K = 2;
  static constexpr bool kCentre = true;
  const T* x;
  const T* dy;
  const T* mean;
  const T* centre(index_t c) const { return mean + c; }
  void seg(index_t c, index_t off, index_t len, T (&acc)[K][kLanes]) const {
    const T* xp = x + off;
    const T* gp = dy + off;
    const T mc = mean[c];
    Lanes<T> a, b, v, g;
    load(a, acc[0]);
    load(b, acc[1]);
    index_t j = 0;
    for (; j + kLanes <= len; j += kLanes) {
      load(v, xp + j);
      load(g, gp + j);
      a += g;
      b += g * (v - mc);
    }
    store(acc[0], a);
    store(acc[1], b);
    for (int q = 0; j < len; ++j, ++q) {
      acc[0][q] += gp[j];
      acc[1][q] += gp[j] * (xp[j] - mc);
    }
  }
  void span(index_t off, index_t len, const T* ctr, T* const* acc) const {
    const T* __restrict xp = x + off;
    const T* __restrict gp = dy + off;
    const T* __restrict cp = ctr;
    T* __restrict a = acc[0];
    T* __restrict b = acc[1];
    for (index_t i = 0; i < len; ++i) {
      a[i] += gp[i];
      b[i] += gp[i] * (xp[i] - cp[i]);
    }
  }
};

// out[k * C + c] (k < Op::K) = the sums of op over chunk `chunk` of channels
// [c0, c1), in double. The order of additions is fixed by the plan alone.
template <typename T, typename Op>
void unit_sums(const Plan& p, const Op& op, index_t chunk, index_t c0, index_t c1,
               double* out) {
  index_t n0, n1, l0, l1;
  p.chunk(chunk, &n0, &n1, &l0, &l1);
  const index_t C = p.C, L = p.L;
  if (!p.planar) {
    const index_t span = (c1 - c0) * L;  // <= kBlockElems
    T buf[Op::K][kBlockElems];
    T ctr[Op::kCentre ? kBlockElems : 1];
    T* acc[Op::K];
    for (int k = 0; k < Op::K; ++k) {
      acc[k] = buf[k];
      std::fill(buf[k], buf[k] + span, T(0));
    }
    if (Op::kCentre)
      for (index_t c = c0; c < c1; ++c)
        std::fill(ctr + (c - c0) * L, ctr + (c - c0 + 1) * L, *op.centre(c));
    for (index_t n = n0; n < n1; ++n) op.span((n * C + c0) * L, span, ctr, acc);
    for (int k = 0; k < Op::K; ++k)
      for (index_t c = c0; c < c1; ++c) {
        double s = 0.0;
        for (index_t l = 0; l < L; ++l) s += static_cast<double>(buf[k][(c - c0) * L + l]);
        out[k * C + c] = s;
      }
    return;
  }
  for (index_t c = c0; c < c1; ++c) {
    T acc[Op::K][kLanes] = {};
    for (index_t n = n0; n < n1; ++n) op.seg(c, (n * C + c) * L + l0, l1 - l0, acc);
    for (int k = 0; k < Op::K; ++k) {
      double s = 0.0;
      for (int q = 0; q < kLanes; ++q) s += static_cast<double>(acc[k][q]);
      out[k * C + c] = s;
    }
  }
}

// part[(chunk * Op::K + k) * C + c]: every unit's sums, computed in parallel.
template <typename T, typename Op>
void all_unit_sums(const Plan& p, const Op& op, std::vector<double>& part) {
  part.resize(static_cast<std::size_t>(p.chunks * Op::K * p.C));
  parallel_for(p.units(), threads_for(p.N * p.C * p.L), [&](index_t b, index_t e) {
    for (index_t u = b; u < e; ++u) {
      const index_t chunk = u / p.cblocks, cb = u % p.cblocks;
      const index_t c0 = cb * p.cblock, c1 = std::min(p.C, c0 + p.cblock);
      unit_sums<T>(p, op, chunk, c0, c1, part.data() + chunk * Op::K * p.C);
    }
  });
}

// Batch mean and biased variance of every channel (deterministic; see the top).
template <typename T>
void batch_stats(const Plan& p, const T* x, std::vector<double>& mean, std::vector<double>& var) {
  const index_t C = p.C;
  std::vector<double> part;
  all_unit_sums<T>(p, SumOp<T>{x}, part);
  // Centre of each chunk: its own mean, rounded to T (pass 2 re-reads it from cache).
  std::vector<T> centre(static_cast<std::size_t>(p.chunks * C));
  for (index_t k = 0; k < p.chunks; ++k) {
    const double inv = 1.0 / static_cast<double>(p.count(k));
    for (index_t c = 0; c < C; ++c) centre[k * C + c] = static_cast<T>(part[k * C + c] * inv);
  }
  std::vector<double> part2;
  part2.resize(static_cast<std::size_t>(p.chunks * 2 * C));
  parallel_for(p.units(), threads_for(p.N * C * p.L), [&](index_t b, index_t e) {
    for (index_t u = b; u < e; ++u) {
      const index_t chunk = u / p.cblocks, cb = u % p.cblocks;
      const index_t c0 = cb * p.cblock, c1 = std::min(C, c0 + p.cblock);
      unit_sums<T>(p, ShiftedOp<T>{x, centre.data() + chunk * C}, chunk, c0, c1,
                   part2.data() + chunk * 2 * C);
    }
  });
  // Chan's merge of (count, mean, M2) over chunks, in chunk order.
  mean.assign(static_cast<std::size_t>(C), 0.0);
  var.assign(static_cast<std::size_t>(C), 0.0);
  for (index_t c = 0; c < C; ++c) {
    double n = 0.0, mu = 0.0, m2 = 0.0;
    for (index_t k = 0; k < p.chunks; ++k) {
      const double nk = static_cast<double>(p.count(k));
      const double s1 = part2[(k * 2) * C + c], s2 = part2[(k * 2 + 1) * C + c];
      const double muk = static_cast<double>(centre[k * C + c]) + s1 / nk;
      const double m2k = s2 - s1 * s1 / nk;
      const double tot = n + nk, delta = muk - mu;
      mu += delta * (nk / tot);
      m2 += m2k + delta * delta * (n * nk / tot);
      n = tot;
    }
    mean[c] = mu;
    var[c] = m2 / n;
  }
}

// y = (x - mean[c]) * scale[c] + shift[c] over all elements, parallel over rows.
template <typename T>
void normalise(index_t N, index_t C, index_t L, const T* x, const T* mean, const T* scale,
               const T* shift, T* y) {
  if (L >= kPlanarMinL) {
    parallel_for(N * C, threads_for(N * C * L), [&](index_t b, index_t e) {
      for (index_t r = b; r < e; ++r) {
        const index_t c = r % C;
        const T m = mean[c], s = scale[c], t = shift[c];
        const T* xr = x + r * L;
        T* yr = y + r * L;
        for (index_t l = 0; l < L; ++l) yr[l] = (xr[l] - m) * s + t;
      }
    });
    return;
  }
  parallel_for(N, threads_for(N * C * L), [&](index_t b, index_t e) {
    for (index_t n = b; n < e; ++n) {
      const T* xn = x + n * C * L;
      T* yn = y + n * C * L;
      if (L == 1) {
        for (index_t c = 0; c < C; ++c) yn[c] = (xn[c] - mean[c]) * scale[c] + shift[c];
      } else {
        for (index_t c = 0; c < C; ++c) {
          const T m = mean[c], s = scale[c], t = shift[c];
          for (index_t l = 0; l < L; ++l) yn[c * L + l] = (xn[c * L + l] - m) * s + t;
        }
      }
    }
  });
}

// dx = k[c] * (dy - a[c] - (x - mean[c]) * bcoef[c])   (a, bcoef = 0: dx = k * dy)
template <typename T>
void input_grad(index_t N, index_t C, index_t L, const T* x, const T* dy, const T* mean,
                const T* k, const T* a, const T* bcoef, T* dx) {
  auto row = [&](index_t c, const T* xr, const T* dr, T* out, index_t len) {
    const T m = mean[c], kc = k[c], ac = a[c], bc = bcoef[c];
    for (index_t l = 0; l < len; ++l) out[l] = kc * (dr[l] - ac - (xr[l] - m) * bc);
  };
  if (L >= kPlanarMinL) {
    parallel_for(N * C, threads_for(N * C * L), [&](index_t b, index_t e) {
      for (index_t r = b; r < e; ++r) row(r % C, x + r * L, dy + r * L, dx + r * L, L);
    });
    return;
  }
  parallel_for(N, threads_for(N * C * L), [&](index_t b, index_t e) {
    for (index_t n = b; n < e; ++n) {
      const T* xn = x + n * C * L;
      const T* dn = dy + n * C * L;
      T* on = dx + n * C * L;
      if (L == 1) {
        for (index_t c = 0; c < C; ++c)
          on[c] = k[c] * (dn[c] - a[c] - (xn[c] - mean[c]) * bcoef[c]);
      } else {
        for (index_t c = 0; c < C; ++c) row(c, xn + c * L, dn + c * L, on + c * L, L);
      }
    }
  });
}

}  // namespace

template <typename T>
void batch_norm_forward(index_t N, index_t C, index_t L, const T* x, const T* gamma,
                        const T* beta, double eps, bool batch_stats_, double momentum,
                        T* running_mean, T* running_var, T* save_mean, T* save_invstd,
                        T* y) noexcept {
  if (N <= 0 || C <= 0 || L <= 0) return;
  std::vector<double> mean, var;
  if (batch_stats_) {
    batch_stats<T>(Plan(N, C, L), x, mean, var);
    if (running_mean != nullptr && running_var != nullptr) {
      const double M = static_cast<double>(N) * static_cast<double>(L);
      const double unbias = M > 1.0 ? M / (M - 1.0) : 1.0;
      for (index_t c = 0; c < C; ++c) {
        running_mean[c] = static_cast<T>((1.0 - momentum) * static_cast<double>(running_mean[c]) +
                                         momentum * mean[c]);
        running_var[c] = static_cast<T>((1.0 - momentum) * static_cast<double>(running_var[c]) +
                                        momentum * var[c] * unbias);
      }
    }
  } else {
    mean.resize(static_cast<std::size_t>(C));
    var.resize(static_cast<std::size_t>(C));
    for (index_t c = 0; c < C; ++c) {
      mean[c] = static_cast<double>(running_mean[c]);
      var[c] = static_cast<double>(running_var[c]);
    }
  }
  std::vector<T> scale(static_cast<std::size_t>(C)), shift(static_cast<std::size_t>(C));
  for (index_t c = 0; c < C; ++c) {
    const double invstd = 1.0 / std::sqrt(var[c] + eps);
    save_mean[c] = static_cast<T>(mean[c]);
    save_invstd[c] = static_cast<T>(invstd);
    scale[c] = static_cast<T>(gamma != nullptr ? static_cast<double>(gamma[c]) * invstd : invstd);
    shift[c] = beta != nullptr ? beta[c] : T(0);
  }
  normalise(N, C, L, x, save_mean, scale.data(), shift.data(), y);
}

template <typename T>
void batch_norm_backward(index_t N, index_t C, index_t L, const T* x, const T* dy,
                         const T* gamma, const T* mean, const T* invstd, bool batch_stats_,
                         T* dx, T beta_gamma, T* dgamma, T beta_beta, T* dbeta) noexcept {
  if (C <= 0) return;
  const bool need_sums = dgamma != nullptr || dbeta != nullptr || (dx != nullptr && batch_stats_);
  std::vector<double> sdy(static_cast<std::size_t>(C), 0.0), sdxm(static_cast<std::size_t>(C), 0.0);
  const bool empty = N <= 0 || L <= 0;
  if (need_sums && !empty) {
    const Plan p(N, C, L);
    std::vector<double> part;
    all_unit_sums<T>(p, GradOp<T>{x, dy, mean}, part);
    for (index_t k = 0; k < p.chunks; ++k)
      for (index_t c = 0; c < C; ++c) {
        sdy[c] += part[(k * 2) * C + c];
        sdxm[c] += part[(k * 2 + 1) * C + c];
      }
  }
  for (index_t c = 0; c < C; ++c) {
    if (dgamma != nullptr) {
      const T g = static_cast<T>(static_cast<double>(invstd[c]) * sdxm[c]);
      dgamma[c] = beta_gamma == T(0) ? g : beta_gamma * dgamma[c] + g;
    }
    if (dbeta != nullptr) {
      const T g = static_cast<T>(sdy[c]);
      dbeta[c] = beta_beta == T(0) ? g : beta_beta * dbeta[c] + g;
    }
  }
  if (dx == nullptr || empty) return;
  const double M = static_cast<double>(N) * static_cast<double>(L);
  std::vector<T> k(static_cast<std::size_t>(C)), a(static_cast<std::size_t>(C), T(0)),
      b(static_cast<std::size_t>(C), T(0));
  for (index_t c = 0; c < C; ++c) {
    const double is = static_cast<double>(invstd[c]);
    k[c] = static_cast<T>(gamma != nullptr ? static_cast<double>(gamma[c]) * is : is);
    if (batch_stats_) {
      a[c] = static_cast<T>(sdy[c] / M);
      b[c] = static_cast<T>(sdxm[c] * is * is / M);
    }
  }
  input_grad(N, C, L, x, dy, mean, k.data(), a.data(), b.data(), dx);
}

#define NEUROPIL_INSTANTIATE(T)                                                              \
  template void batch_norm_forward<T>(index_t, index_t, index_t, const T*, const T*,         \
                                      const T*, double, bool, double, T*, T*, T*, T*,        \
                                      T*) noexcept;                                          \
  template void batch_norm_backward<T>(index_t, index_t, index_t, const T*, const T*,        \
                                       const T*, const T*, const T*, bool, T*, T, T*, T,     \
                                       T*) noexcept;
NEUROPIL_INSTANTIATE(float)
NEUROPIL_INSTANTIATE(double)
#undef NEUROPIL_INSTANTIATE

}  // namespace neuropil
