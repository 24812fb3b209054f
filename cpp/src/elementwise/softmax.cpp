// Softmax, log-softmax and row argmax (see neuropil/elementwise.h).
#include <cmath>

#include "neuropil/elementwise.h"
#include "util.h"

namespace neuropil {
using elementwise_detail::threads_for;

namespace {

template <typename T>
inline T row_max(const T* x, index_t C) {
  T m = x[0];
  for (index_t c = 1; c < C; ++c) {
    // NaN anywhere makes the row NaN (m stays NaN once set).
    if (!(x[c] <= m)) m = (m != m) ? m : x[c];
  }
  return m;
}

// Writes e[c] = exp(x[c] - m) and returns sum_c e[c] (double accumulation, in order).
template <typename T>
inline double exp_shifted(const T* x, T m, T* e, index_t C) {
  double s = 0.0;
  for (index_t c = 0; c < C; ++c) {
    const T v = std::exp(x[c] - m);
    e[c] = v;
    s += static_cast<double>(v);
  }
  return s;
}

template <typename T>
inline double sum_exp_shifted(const T* x, T m, index_t C) {
  double s = 0.0;
  for (index_t c = 0; c < C; ++c) s += static_cast<double>(std::exp(x[c] - m));
  return s;
}

template <typename T>
inline index_t work_rows(index_t N, index_t C) {
  (void)N;
  return C * 8;  // exp per element
}

}  // namespace

template <typename T>
void softmax_forward(index_t N, index_t C, const T* x, T* y) noexcept {
  if (N <= 0 || C <= 0) return;
  parallel_for(N, threads_for(N * work_rows<T>(N, C)), [&](index_t b, index_t e) {
    for (index_t n = b; n < e; ++n) {
      const T* xr = x + n * C;
      T* yr = y + n * C;
      const T m = row_max(xr, C);
      const T inv = static_cast<T>(1.0 / exp_shifted(xr, m, yr, C));
      for (index_t c = 0; c < C; ++c) yr[c] *= inv;
    }
  });
}

template <typename T>
void log_softmax_forward(index_t N, index_t C, const T* x, T* y) noexcept {
  if (N <= 0 || C <= 0) return;
  parallel_for(N, threads_for(N * work_rows<T>(N, C)), [&](index_t b, index_t e) {
    for (index_t n = b; n < e; ++n) {
      const T* xr = x + n * C;
      T* yr = y + n * C;
      const T m = row_max(xr, C);
      const T shift = m + static_cast<T>(std::log(sum_exp_shifted(xr, m, C)));
      for (index_t c = 0; c < C; ++c) yr[c] = xr[c] - shift;
    }
  });
}

template <typename T>
void argmax_rows(index_t N, index_t C, const T* x, std::int64_t* idx) noexcept {
  if (N <= 0 || C <= 0) return;
  parallel_for(N, threads_for(N * C), [&](index_t b, index_t e) {
    for (index_t n = b; n < e; ++n) {
      const T* xr = x + n * C;
      index_t best = 0;
      T m = xr[0];
      for (index_t c = 1; c < C && m == m; ++c)  // stops at the first NaN
        if (xr[c] > m || xr[c] != xr[c]) {
          m = xr[c];
          best = c;
        }
      idx[n] = best;
    }
  });
}

template <typename T>
void softmax_backward(index_t N, index_t C, const T* y, const T* dy, T* dx) noexcept {
  if (N <= 0 || C <= 0) return;
  parallel_for(N, threads_for(N * C), [&](index_t b, index_t e) {
    for (index_t n = b; n < e; ++n) {
      const T* yr = y + n * C;
      const T* dr = dy + n * C;
      T* xr = dx + n * C;
      double s = 0.0;
      for (index_t c = 0; c < C; ++c) s += static_cast<double>(dr[c]) * yr[c];
      const T st = static_cast<T>(s);
      for (index_t c = 0; c < C; ++c) xr[c] = yr[c] * (dr[c] - st);
    }
  });
}

template <typename T>
void log_softmax_backward(index_t N, index_t C, const T* y, const T* dy, T* dx) noexcept {
  if (N <= 0 || C <= 0) return;
  parallel_for(N, threads_for(N * work_rows<T>(N, C)), [&](index_t b, index_t e) {
    for (index_t n = b; n < e; ++n) {
      const T* yr = y + n * C;
      const T* dr = dy + n * C;
      T* xr = dx + n * C;
      double s = 0.0;
      for (index_t c = 0; c < C; ++c) s += static_cast<double>(dr[c]);
      const T st = static_cast<T>(s);
      for (index_t c = 0; c < C; ++c) xr[c] = dr[c] - std::exp(yr[c]) * st;
    }
  });
}

#define NEUROPIL_INSTANTIATE(T)                                                                \
  template void softmax_forward<T>(index_t, index_t, const T*, T*) noexcept;                   \
  template void log_softmax_forward<T>(index_t, index_t, const T*, T*) noexcept;               \
  template void softmax_backward<T>(index_t, index_t, const T*, const T*, T*) noexcept;        \
  template void argmax_rows<T>(index_t, index_t, const T*, std::int64_t*) noexcept;            \
  template void log_softmax_backward<T>(index_t, index_t, const T*, const T*, T*) noexcept;
NEUROPIL_INSTANTIATE(float)
NEUROPIL_INSTANTIATE(double)
#undef NEUROPIL_INSTANTIATE

}  // namespace neuropil
