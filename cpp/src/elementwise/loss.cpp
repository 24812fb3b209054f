// Elementwise losses: MSE and binary cross-entropy with logits (see neuropil/elementwise.h).
#include <cmath>

#include "neuropil/elementwise.h"
#include "util.h"

namespace neuropil {
using elementwise_detail::chunked_sum;
using elementwise_detail::threads_for;

namespace {
constexpr index_t kChunk = 4096;  // elements per partial sum (fixed: determinism)
}  // namespace

template <typename T>
double mse_loss(index_t n, const T* pred, const T* target, Reduction reduction, T* grad) noexcept {
  if (n <= 0) return reduction == Reduction::Mean ? NAN : 0.0;
  const double scale = reduction == Reduction::Mean ? 1.0 / static_cast<double>(n) : 1.0;
  const T gscale = static_cast<T>(2.0 * scale);
  const double total = chunked_sum(n, kChunk, threads_for(n), [&](index_t b, index_t e) {
    double part = 0.0;
    for (index_t i = b; i < e; ++i) {
      const T d = pred[i] - target[i];
      part += static_cast<double>(d) * static_cast<double>(d);
      if (grad != nullptr) grad[i] = gscale * d;
    }
    return part;
  });
  return total * scale;
}

template <typename T>
double bce_with_logits(index_t n, const T* logits, const T* target, Reduction reduction,
                       T* grad) noexcept {
  if (n <= 0) return reduction == Reduction::Mean ? NAN : 0.0;
  const double scale = reduction == Reduction::Mean ? 1.0 / static_cast<double>(n) : 1.0;
  const T gscale = static_cast<T>(scale);
  const double total = chunked_sum(n, kChunk, threads_for(n * 8), [&](index_t b, index_t e) {
    double part = 0.0;
    for (index_t i = b; i < e; ++i) {
      const T x = logits[i], t = target[i];
      const T ex = std::exp(-std::abs(x));  // in (0, 1]: never overflows
      const T relu = x > T(0) ? x : T(0);
      part += static_cast<double>(relu - x * t) + std::log1p(static_cast<double>(ex));
      if (grad != nullptr) {
        const T r = T(1) / (T(1) + ex);
        const T sig = x >= T(0) ? r : ex * r;
        grad[i] = gscale * (sig - t);
      }
    }
    return part;
  });
  return total * scale;
}

#define NEUROPIL_INSTANTIATE(T)                                                        \
  template double mse_loss<T>(index_t, const T*, const T*, Reduction, T*) noexcept;    \
  template double bce_with_logits<T>(index_t, const T*, const T*, Reduction, T*) noexcept;
NEUROPIL_INSTANTIATE(float)
NEUROPIL_INSTANTIATE(double)
#undef NEUROPIL_INSTANTIATE

}  // namespace neuropil
