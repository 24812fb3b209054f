// Class losses over [N, C, S]: softmax cross-entropy (class-index or probability
// targets) and NLL, with class weights, ignore_index and the three reductions
// (math in neuropil/loss.h).
//
// Positions are processed in blocks of B (one sample's contiguous pixels when S > 1,
// consecutive rows when S = 1) so that the loops over a class run along memory. Each
// position's arithmetic is the same whatever its block, and position losses are added
// in position order inside fixed chunks of positions folded in chunk order: block
// size and thread count never change a bit.
#include <cmath>

#include "neuropil/loss.h"
#include "util.h"

namespace neuropil {
using elementwise_detail::chunked_sum;
using elementwise_detail::threads_for;

namespace {

constexpr index_t kPosChunk = 256;     // positions per partial loss sum (fixed: determinism)
constexpr index_t kWeightChunk = 4096;  // positions per partial weight sum (fixed)
constexpr index_t kMaxBlock = 64;       // positions per block
constexpr index_t kBlockElems = 4096;   // a block's values (B * C) stay near this (L1)

// One block of B positions starting at position p, whose values start at x[off]:
// Rows (S = 1): value (j, c) at off + j * C + c, visited row by row;
// otherwise:    value (j, c) at off + c * S + j, visited class by class.
// Either way each position's classes are visited in increasing c.
struct Block {
  index_t p, B, off;
};

template <bool Rows>
struct Layout {
  index_t C, S;
  index_t at(index_t j, index_t c) const { return Rows ? j * C + c : c * S + j; }
  // f(j, c, i) over the block, i the value's offset from the block's start.
  template <typename F>
  void each(const Block& b, F&& f) const {
    if (Rows) {
      for (index_t j = 0; j < b.B; ++j)
        for (index_t c = 0; c < C; ++c) f(j, c, j * C + c);
    } else {
      for (index_t c = 0; c < C; ++c)
        for (index_t j = 0; j < b.B; ++j) f(j, c, c * S + j);
    }
  }
};

// Calls f(Block) for consecutive blocks covering positions [p0, p1).
template <bool Rows, typename F>
void for_blocks(const Layout<Rows>& L, index_t p0, index_t p1, F&& f) {
  const index_t bmax = std::max<index_t>(1, std::min(kMaxBlock, kBlockElems / std::max<index_t>(L.C, 1)));
  for (index_t p = p0; p < p1;) {
    Block b;
    b.p = p;
    if (Rows) {
      b.B = std::min(bmax, p1 - p);
      b.off = p * L.C;
    } else {
      const index_t n = p / L.S, s = p % L.S;
      b.B = std::min(std::min(bmax, p1 - p), L.S - s);
      b.off = n * L.C * L.S + s;
    }
    f(b);
    p += b.B;
  }
}

// Per-position class index (-1 where ignored) and weight (0 where ignored).
template <typename T>
void block_targets(const Block& b, const std::int64_t* labels, const T* weight,
                   std::int64_t ignore_index, index_t* y, T* w) {
  for (index_t j = 0; j < b.B; ++j) {
    const std::int64_t l = labels[b.p + j];
    const bool ignored = l == ignore_index;
    y[j] = ignored ? -1 : static_cast<index_t>(l);
    w[j] = ignored ? T(0) : (weight != nullptr ? weight[l] : T(1));
  }
}

// m[j] = max over classes of position j; NaN anywhere makes it NaN.
template <bool Rows, typename T>
void block_max(const Layout<Rows>& L, const Block& b, const T* x, T* m) {
  for (index_t j = 0; j < b.B; ++j) m[j] = x[L.at(j, 0)];
  L.each(b, [&](index_t j, index_t c, index_t i) {
    const T v = x[i];
    (void)c;
    if (!(v <= m[j])) m[j] = (m[j] != m[j]) ? m[j] : v;  // (c = 0 compares m with itself)
  });
}

// W = sum of the positions' weights (count of non-ignored positions without weight).
template <typename T>
double weight_total(index_t P, const std::int64_t* labels, const T* weight,
                    std::int64_t ignore_index) {
  return chunked_sum(P, kWeightChunk, threads_for(P), [&](index_t b, index_t e) {
    double part = 0.0;
    for (index_t p = b; p < e; ++p) {
      const std::int64_t l = labels[p];
      if (l != ignore_index) part += weight != nullptr ? static_cast<double>(weight[l]) : 1.0;
    }
    return part;
  });
}

// 1 / s_red for class-index targets: 1 / W (Mean; inf when W = 0), else 1.
template <typename T>
double label_scale(Reduction red, index_t P, const std::int64_t* labels, const T* weight,
                   std::int64_t ignore_index) {
  return red == Reduction::Mean ? 1.0 / weight_total(P, labels, weight, ignore_index) : 1.0;
}

template <bool Rows, typename T>
double ce_labels_impl(index_t N, index_t C, index_t S, const T* logits, const std::int64_t* labels,
                      const T* weight, std::int64_t ignore_index, Reduction red, T* losses,
                      T* grad) {
  const index_t P = N * S;
  const Layout<Rows> L{C, S};
  const double scale = label_scale(red, P, labels, weight, ignore_index);
  const double total = chunked_sum(P, kPosChunk, threads_for(P * C * 8), [&](index_t b0, index_t e0) {
    double part = 0.0;
    for_blocks(L, b0, e0, [&](const Block& b) {
      const T* x = logits + b.off;
      T* g = grad != nullptr ? grad + b.off : nullptr;
      index_t y[kMaxBlock];
      T w[kMaxBlock], m[kMaxBlock], x_label[kMaxBlock];
      double sum[kMaxBlock];
      block_targets(b, labels, weight, ignore_index, y, w);
      block_max(L, b, x, m);
      // read before grad (which may alias logits) is written
      for (index_t j = 0; j < b.B; ++j) x_label[j] = y[j] >= 0 ? x[L.at(j, y[j])] : T(0);
      for (index_t j = 0; j < b.B; ++j) sum[j] = 0.0;
      if (g != nullptr) {
        L.each(b, [&](index_t j, index_t, index_t i) {
          const T e = std::exp(x[i] - m[j]);
          g[i] = e;
          sum[j] += static_cast<double>(e);
        });
      } else {
        L.each(b, [&](index_t j, index_t, index_t i) {
          sum[j] += static_cast<double>(std::exp(x[i] - m[j]));
        });
      }
      for (index_t j = 0; j < b.B; ++j) {
        const double l = y[j] >= 0 ? static_cast<double>(w[j]) *
                                         (std::log(sum[j]) + static_cast<double>(m[j]) -
                                          static_cast<double>(x_label[j]))
                                   : 0.0;
        part += l;
        if (red == Reduction::None) losses[b.p + j] = static_cast<T>(l);
      }
      if (g == nullptr) return;
      // softmax * w / s_red, 0 at ignored positions (also where the logits are not finite)
      T coef[kMaxBlock];
      for (index_t j = 0; j < b.B; ++j)
        coef[j] = static_cast<T>(static_cast<double>(w[j]) * scale / sum[j]);
      L.each(b, [&](index_t j, index_t, index_t i) { g[i] = y[j] >= 0 ? g[i] * coef[j] : T(0); });
      for (index_t j = 0; j < b.B; ++j)
        if (y[j] >= 0) g[L.at(j, y[j])] -= static_cast<T>(static_cast<double>(w[j]) * scale);
    });
    return part;
  });
  return red == Reduction::None ? 0.0 : total * scale;
}

template <bool Rows, typename T>
double ce_targets_impl(index_t N, index_t C, index_t S, const T* logits, const T* targets,
                       const T* weight, Reduction red, T* losses, T* grad) {
  const index_t P = N * S;
  const Layout<Rows> L{C, S};
  const double scale = red == Reduction::Mean ? 1.0 / static_cast<double>(P) : 1.0;
  const double total = chunked_sum(P, kPosChunk, threads_for(P * C * 8), [&](index_t b0, index_t e0) {
    double part = 0.0;
    for_blocks(L, b0, e0, [&](const Block& b) {
      const T* x = logits + b.off;
      const T* t = targets + b.off;
      T m[kMaxBlock];
      double lse[kMaxBlock], tsum[kMaxBlock], dot[kMaxBlock];
      block_max(L, b, x, m);
      for (index_t j = 0; j < b.B; ++j) lse[j] = tsum[j] = dot[j] = 0.0;
      L.each(b, [&](index_t j, index_t, index_t i) {
        lse[j] += static_cast<double>(std::exp(x[i] - m[j]));
      });
      for (index_t j = 0; j < b.B; ++j) lse[j] = std::log(lse[j]) + static_cast<double>(m[j]);
      L.each(b, [&](index_t j, index_t c, index_t i) {
        const double tw = (weight != nullptr ? static_cast<double>(weight[c]) : 1.0) *
                          static_cast<double>(t[i]);
        tsum[j] += tw;
        // t = 0 contributes nothing even where log_softmax is -inf.
        if (tw != 0.0) dot[j] += tw * (static_cast<double>(x[i]) - lse[j]);
      });
      for (index_t j = 0; j < b.B; ++j) {
        part -= dot[j];
        if (red == Reduction::None) losses[b.p + j] = static_cast<T>(-dot[j]);
      }
      if (grad == nullptr) return;
      T* g = grad + b.off;
      L.each(b, [&](index_t j, index_t c, index_t i) {
        const double wc = weight != nullptr ? static_cast<double>(weight[c]) : 1.0;
        const double p = std::exp(static_cast<double>(x[i]) - lse[j]);
        g[i] = static_cast<T>((p * tsum[j] - wc * static_cast<double>(t[i])) * scale);
      });
    });
    return part;
  });
  return red == Reduction::None ? 0.0 : total * scale;
}

template <bool Rows, typename T>
double nll_impl(index_t N, index_t C, index_t S, const T* logp, const std::int64_t* labels,
                const T* weight, std::int64_t ignore_index, Reduction red, T* losses, T* grad) {
  const index_t P = N * S;
  const Layout<Rows> L{C, S};
  const double scale = label_scale(red, P, labels, weight, ignore_index);
  const double total = chunked_sum(P, kPosChunk, threads_for(P * C), [&](index_t b0, index_t e0) {
    double part = 0.0;
    for_blocks(L, b0, e0, [&](const Block& b) {
      const T* x = logp + b.off;
      index_t y[kMaxBlock];
      T w[kMaxBlock];
      block_targets(b, labels, weight, ignore_index, y, w);
      for (index_t j = 0; j < b.B; ++j) {
        const double l =
            y[j] >= 0 ? -static_cast<double>(w[j]) * static_cast<double>(x[L.at(j, y[j])]) : 0.0;
        part += l;
        if (red == Reduction::None) losses[b.p + j] = static_cast<T>(l);
      }
      if (grad == nullptr) return;  // (x was read above: grad may alias logp)
      T* g = grad + b.off;
      L.each(b, [&](index_t, index_t, index_t i) { g[i] = T(0); });
      for (index_t j = 0; j < b.B; ++j)
        if (y[j] >= 0) g[L.at(j, y[j])] = static_cast<T>(-static_cast<double>(w[j]) * scale);
    });
    return part;
  });
  return red == Reduction::None ? 0.0 : total * scale;
}

}  // namespace

template <typename T>
double softmax_cross_entropy_labels(index_t N, index_t C, index_t S, const T* logits,
                                    const std::int64_t* labels, const T* weight,
                                    std::int64_t ignore_index, Reduction red, T* losses,
                                    T* grad) noexcept {
  if (N * S <= 0 || C <= 0) return red == Reduction::Mean ? NAN : 0.0;
  return S == 1 ? ce_labels_impl<true>(N, C, S, logits, labels, weight, ignore_index, red, losses, grad)
                : ce_labels_impl<false>(N, C, S, logits, labels, weight, ignore_index, red, losses, grad);
}

template <typename T>
double softmax_cross_entropy_targets(index_t N, index_t C, index_t S, const T* logits,
                                     const T* targets, const T* weight, Reduction red,
                                     T* losses, T* grad) noexcept {
  if (N * S <= 0 || C <= 0) return red == Reduction::Mean ? NAN : 0.0;
  return S == 1 ? ce_targets_impl<true>(N, C, S, logits, targets, weight, red, losses, grad)
                : ce_targets_impl<false>(N, C, S, logits, targets, weight, red, losses, grad);
}

template <typename T>
double nll_loss(index_t N, index_t C, index_t S, const T* logp, const std::int64_t* labels,
                const T* weight, std::int64_t ignore_index, Reduction red, T* losses,
                T* grad) noexcept {
  if (N * S <= 0 || C <= 0) return red == Reduction::Mean ? NAN : 0.0;
  return S == 1 ? nll_impl<true>(N, C, S, logp, labels, weight, ignore_index, red, losses, grad)
                : nll_impl<false>(N, C, S, logp, labels, weight, ignore_index, red, losses, grad);
}

#define NEUROPIL_INSTANTIATE(T)                                                                  \
  template double softmax_cross_entropy_labels<T>(index_t, index_t, index_t, const T*,           \
                                                  const std::int64_t*, const T*, std::int64_t,   \
                                                  Reduction, T*, T*) noexcept;                   \
  template double softmax_cross_entropy_targets<T>(index_t, index_t, index_t, const T*, const T*, \
                                                   const T*, Reduction, T*, T*) noexcept;        \
  template double nll_loss<T>(index_t, index_t, index_t, const T*, const std::int64_t*, const T*, \
                              std::int64_t, Reduction, T*, T*) noexcept;
NEUROPIL_INSTANTIATE(float)
NEUROPIL_INSTANTIATE(double)
#undef NEUROPIL_INSTANTIATE

}  // namespace neuropil
