// Elementwise losses (MSE, L1, binary cross-entropy on logits and on probabilities)
// and the backward of a reduction-None loss (see neuropil/loss.h).
#include <algorithm>
#include <atomic>
#include <cmath>

#include "neuropil/loss.h"
#include "util.h"

namespace neuropil {
using elementwise_detail::chunked_sum;
using elementwise_detail::threads_for;

namespace {

constexpr index_t kChunk = 4096;  // elements per partial sum (fixed: determinism)

// The shared loop: f(i) -> (loss_i as double, d loss_i / d input_i as double).
// Mean and Sum write grad_i = d_i * scale and return scale * sum_i loss_i (sum in
// fixed chunks); None writes losses_i and grad_i = d_i.
template <typename T, typename F>
double elementwise_loss(index_t n, Reduction red, T* losses, T* grad, int work_per_element,
                        F&& f) {
  if (n <= 0) return red == Reduction::Mean ? NAN : 0.0;
  const double scale = red == Reduction::Mean ? 1.0 / static_cast<double>(n) : 1.0;
  const T gscale = static_cast<T>(scale);
  const double total = chunked_sum(n, kChunk, threads_for(n * work_per_element),
                                   [&](index_t b, index_t e) {
    double part = 0.0;
    for (index_t i = b; i < e; ++i) {
      const auto ld = f(i);
      part += ld.first;
      if (red == Reduction::None) losses[i] = static_cast<T>(ld.first);
      if (grad != nullptr) grad[i] = red == Reduction::None ? ld.second : gscale * ld.second;
    }
    return part;
  });
  return red == Reduction::None ? 0.0 : total * scale;
}

template <typename T>
struct LossGrad {
  double first;  // the element's loss
  T second;      // its derivative (unscaled)
};

}  // namespace

template <typename T>
double mse_loss(index_t n, const T* pred, const T* target, Reduction red, T* losses,
                T* grad) noexcept {
  return elementwise_loss(n, red, losses, grad, 1, [&](index_t i) {
    const T d = pred[i] - target[i];
    return LossGrad<T>{static_cast<double>(d) * static_cast<double>(d), T(2) * d};
  });
}

template <typename T>
double l1_loss(index_t n, const T* pred, const T* target, Reduction red, T* losses,
               T* grad) noexcept {
  return elementwise_loss(n, red, losses, grad, 1, [&](index_t i) {
    const T d = pred[i] - target[i];
    const T sign = d > T(0) ? T(1) : (d < T(0) ? T(-1) : (d == d ? T(0) : d));
    return LossGrad<T>{std::abs(static_cast<double>(d)), sign};
  });
}

template <typename T>
double bce_with_logits(index_t n, const T* logits, const T* target, Reduction red, T* losses,
                       T* grad) noexcept {
  return elementwise_loss(n, red, losses, grad, 8, [&](index_t i) {
    const T x = logits[i], t = target[i];
    const T ex = std::exp(-std::abs(x));  // in (0, 1]: never overflows
    const T relu = x > T(0) ? x : T(0);
    const double l = static_cast<double>(relu - x * t) + std::log1p(static_cast<double>(ex));
    const T r = T(1) / (T(1) + ex);
    const T sig = x >= T(0) ? r : ex * r;
    return LossGrad<T>{l, sig - t};
  });
}

template <typename T>
double binary_cross_entropy(index_t n, const T* prob, const T* target, Reduction red,
                            T* losses, T* grad, index_t* first_invalid) noexcept {
  std::atomic<index_t> bad{n};  // the minimum is the same whatever the thread order
  const double result = elementwise_loss(n, red, losses, grad, 8, [&](index_t i) {
    const double p = static_cast<double>(prob[i]), t = static_cast<double>(target[i]);
    if (p < 0.0 || p > 1.0) {
      index_t seen = bad.load(std::memory_order_relaxed);
      while (i < seen && !bad.compare_exchange_weak(seen, i, std::memory_order_relaxed)) {
      }
    }
    // std::max(NaN, -100) is NaN: a NaN input stays NaN in the loss
    const double log_p = std::max(std::log(p), -100.0);
    const double log_q = std::max(std::log1p(-p), -100.0);
    const double l = -(t * log_p + (1.0 - t) * log_q);
    const double denom = p * (1.0 - p);  // clamped at 1e-12 as PyTorch, NaN kept
    const double d = (p - t) / (denom > 1e-12 ? denom : (denom == denom ? 1e-12 : denom));
    return LossGrad<T>{l, static_cast<T>(d)};
  });
  if (first_invalid != nullptr) *first_invalid = bad.load();
  return result;
}

template <typename T>
void broadcast_scale(index_t N, index_t C, index_t S, const T* g, const T* w, T* dx) noexcept {
  if (N <= 0 || C <= 0 || S <= 0) return;
  if (S == 1) {
    parallel_for(N, threads_for(N * C), [&](index_t b, index_t e) {
      for (index_t n = b; n < e; ++n) {
        const T wn = w[n];
        for (index_t c = 0; c < C; ++c) dx[n * C + c] = g[n * C + c] * wn;
      }
    });
    return;
  }
  parallel_for(N * C, threads_for(N * C * S), [&](index_t b, index_t e) {
    for (index_t r = b; r < e; ++r) {
      const T* wr = w + (r / C) * S;
      for (index_t s = 0; s < S; ++s) dx[r * S + s] = g[r * S + s] * wr[s];
    }
  });
}

#define NEUROPIL_INSTANTIATE(T)                                                                    \
  template double mse_loss<T>(index_t, const T*, const T*, Reduction, T*, T*) noexcept;            \
  template double l1_loss<T>(index_t, const T*, const T*, Reduction, T*, T*) noexcept;             \
  template double bce_with_logits<T>(index_t, const T*, const T*, Reduction, T*, T*) noexcept;     \
  template double binary_cross_entropy<T>(index_t, const T*, const T*, Reduction, T*, T*,          \
                                          index_t*) noexcept;                                      \
  template void broadcast_scale<T>(index_t, index_t, index_t, const T*, const T*, T*) noexcept;
NEUROPIL_INSTANTIATE(float)
NEUROPIL_INSTANTIATE(double)
#undef NEUROPIL_INSTANTIATE

}  // namespace neuropil
