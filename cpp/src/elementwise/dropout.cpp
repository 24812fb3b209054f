// Inverted dropout with a counter-based mask (see neuropil/elementwise.h).
#include <cmath>

#include "neuropil/elementwise.h"
#include "util.h"

namespace neuropil {
using elementwise_detail::threads_for;

namespace {

inline std::uint64_t splitmix64(std::uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

// Drop when the top 32 bits fall below round(p * 2^32) (p < 1, so it fits).
inline std::uint64_t drop_threshold(double p) {
  return static_cast<std::uint64_t>(std::llround(p * 4294967296.0));
}

template <typename T>
void apply_mask(index_t n, double p, std::uint64_t seed, const T* x, T* y) {
  const std::uint64_t thr = drop_threshold(p);
  const T scale = static_cast<T>(1.0 / (1.0 - p));
  parallel_for(n, threads_for(n * 4), [&](index_t b, index_t e) {
    for (index_t i = b; i < e; ++i) {
      const std::uint64_t h =
          splitmix64(seed + static_cast<std::uint64_t>(i + 1) * 0x9E3779B97F4A7C15ULL) >> 32;
      const T v = x[i] * scale;  // unconditional load: a blend, not a branch
      y[i] = h >= thr ? v : T(0);
    }
  });
}

// Whole planes (Dropout2d): plane q kept or dropped by the hash of q. Parallel over
// planes when the tensor is large; each plane is written by one thread.
template <typename T>
void apply_channel_mask(index_t P, index_t S, double p, std::uint64_t seed, const T* x, T* y) {
  const std::uint64_t thr = drop_threshold(p);
  const T scale = static_cast<T>(1.0 / (1.0 - p));
  parallel_for(P, threads_for(P * S), [&](index_t b, index_t e) {
    for (index_t q = b; q < e; ++q) {
      const std::uint64_t h =
          splitmix64(seed + static_cast<std::uint64_t>(q + 1) * 0x9E3779B97F4A7C15ULL) >> 32;
      const T* xq = x + q * S;
      T* yq = y + q * S;
      if (h >= thr) {
        for (index_t i = 0; i < S; ++i) yq[i] = xq[i] * scale;
      } else {
        for (index_t i = 0; i < S; ++i) yq[i] = T(0);  // NaN in a dropped plane gives 0
      }
    }
  });
}

}  // namespace

template <typename T>
void dropout_channels(index_t P, index_t S, double p, std::uint64_t seed, const T* x,
                      T* y) noexcept {
  if (P > 0 && S > 0) apply_channel_mask(P, S, p, seed, x, y);
}

template <typename T>
void dropout_forward(index_t n, double p, std::uint64_t seed, const T* x, T* y) noexcept {
  if (n > 0) apply_mask(n, p, seed, x, y);
}

template <typename T>
void dropout_backward(index_t n, double p, std::uint64_t seed, const T* dy, T* dx) noexcept {
  if (n > 0) apply_mask(n, p, seed, dy, dx);
}

#define NEUROPIL_INSTANTIATE(T)                                                            \
  template void dropout_forward<T>(index_t, double, std::uint64_t, const T*, T*) noexcept; \
  template void dropout_backward<T>(index_t, double, std::uint64_t, const T*, T*) noexcept; \
  template void dropout_channels<T>(index_t, index_t, double, std::uint64_t, const T*,     \
                                    T*) noexcept;
NEUROPIL_INSTANTIATE(float)
NEUROPIL_INSTANTIATE(double)
#undef NEUROPIL_INSTANTIATE

}  // namespace neuropil
