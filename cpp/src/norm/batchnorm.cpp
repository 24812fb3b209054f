// Batch normalisation forward and backward (math in neuropil/norm.h).
//
// Reductions: each channel's M = N*L elements are cut into fixed chunks (a block of
// batch rows, or a piece of one long row) that depend only on (N, C, L). A work unit is
// one chunk of a block of channels; units run on any thread, each writes its own
// partials, and every channel folds its chunk partials in chunk order, in double. So
// the bits never depend on the thread count. Within a unit, a channel's elements are
// summed in T over 8 lanes in a fixed order (at most 4096 elements per chunk; each
// lane adds at most 512 values), the lanes folded in order.
//
// Forward statistics take two passes over a unit while it is in cache: the chunk sum
// gives a centre m, then sum (x - m) and sum (x - m)^2 give the chunk's exact mean and
// M2 (shifted data: no cancellation), merged across chunks as Chan et al.
// Elementwise passes (normalise, dx) touch every element once; parallel over rows.
#include "neuropil/norm.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "neuropil/parallel.h"

namespace neuropil {
namespace {

constexpr index_t kChunk = 4096;        // at most this many elements of one channel per chunk
constexpr index_t kPlanarMinL = 64;     // rows this long are reduced one channel at a time
constexpr index_t kChannelBlock = 64;   // shorter rows: units cover blocks of channels
constexpr int kLanes = 8;

// Memory-bound passes: a second thread pays off only on large tensors (waking the pool
// costs microseconds, and milliseconds when the host has descheduled a vCPU).
int threads_for(index_t work) { return work >= (index_t(1) << 16) ? get_num_threads() : 1; }

// The fixed chunking of a channel's elements, and the work units over it.
struct Plan {
  index_t N, C, L;
  index_t rows;    // batch rows per chunk
  index_t pieces;  // pieces per row (> 1 only when L > kChunk)
  index_t chunks;  // chunks per channel
  index_t cblock;  // channels per unit
  index_t cblocks;

  Plan(index_t n, index_t c, index_t l) : N(n), C(c), L(l) {
    const bool planar = L >= kPlanarMinL;
    cblock = planar ? 1 : kChannelBlock;
    cblocks = (C + cblock - 1) / cblock;
    if (L > kChunk) {
      rows = 1;
      pieces = (L + kChunk - 1) / kChunk;
    } else {
      rows = std::max<index_t>(1, kChunk / (planar ? L : L * kChannelBlock));
      pieces = 1;
    }
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

// Reduction ops: op(c, i, v) writes K values for element i (flat index) of channel c.
template <typename T>
struct SumOp {
  static constexpr int K = 1;
  const T* x;
  void operator()(index_t, index_t i, T* v) const { v[0] = x[i]; }
};
template <typename T>
struct ShiftedOp {  // sum (x - m), sum (x - m)^2 about a per-channel centre m
  static constexpr int K = 2;
  const T* x;
  const T* m;
  void operator()(index_t c, index_t i, T* v) const {
    const T d = x[i] - m[c];
    v[0] = d;
    v[1] = d * d;
  }
};
template <typename T>
struct GradOp {  // sum dy, sum dy * (x - mean)
  static constexpr int K = 2;
  const T* x;
  const T* dy;
  const T* mean;
  void operator()(index_t c, index_t i, T* v) const {
    v[0] = dy[i];
    v[1] = dy[i] * (x[i] - mean[c]);
  }
};

// Lane sums of op over one contiguous segment [off, off + len) of channel c.
template <typename T, typename Op>
inline void lane_segment(const Op& op, index_t c, index_t off, index_t len,
                         T (&acc)[Op::K][kLanes]) {
  index_t j = 0;
  for (; j + kLanes <= len; j += kLanes) {
    for (int q = 0; q < kLanes; ++q) {
      T v[Op::K];
      op(c, off + j + q, v);
      for (int k = 0; k < Op::K; ++k) acc[k][q] += v[k];
    }
  }
  for (; j < len; ++j) {
    T v[Op::K];
    op(c, off + j, v);
    for (int k = 0; k < Op::K; ++k) acc[k][j - (len & ~index_t(kLanes - 1))] += v[k];
  }
}

// out[k * C + c] (k < Op::K) = the sums of op over chunk `chunk` of channels
// [c0, c1), in double. The order of additions is fixed by the plan alone.
template <typename T, typename Op>
void unit_sums(const Plan& p, const Op& op, index_t chunk, index_t c0, index_t c1,
               double* out) {
  index_t n0, n1, l0, l1;
  p.chunk(chunk, &n0, &n1, &l0, &l1);
  const index_t C = p.C, L = p.L;
  if (L == 1) {  // (N, C): rows run along the channels; one accumulator per channel
    T acc[Op::K][kChannelBlock] = {};
    for (index_t n = n0; n < n1; ++n) {
      for (index_t c = c0; c < c1; ++c) {
        T v[Op::K];
        op(c, n * C + c, v);
        for (int k = 0; k < Op::K; ++k) acc[k][c - c0] += v[k];
      }
    }
    for (int k = 0; k < Op::K; ++k)
      for (index_t c = c0; c < c1; ++c) out[k * C + c] = static_cast<double>(acc[k][c - c0]);
    return;
  }
  for (index_t c = c0; c < c1; ++c) {
    T acc[Op::K][kLanes] = {};
    for (index_t n = n0; n < n1; ++n) lane_segment(op, c, (n * C + c) * L + l0, l1 - l0, acc);
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
