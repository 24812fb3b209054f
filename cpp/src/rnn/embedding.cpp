// Embedding gather/scatter-add and the reductions behind clip_grad_norm_ (see rnn.h).
#include <algorithm>
#include <vector>

#include "neuropil/parallel.h"
#include "neuropil/rnn.h"

namespace neuropil {
namespace {

constexpr index_t kParallelElems = 32768;

template <typename T>
void embedding_forward_impl(const T* weight, const std::int64_t* idx, index_t M, index_t E,
                            T* out) {
  const int threads = M * E >= kParallelElems ? get_num_threads() : 1;
  parallel_for(M, threads, [&](index_t begin, index_t end) {
    for (index_t m = begin; m < end; ++m) std::copy(weight + idx[m] * E, weight + idx[m] * E + E,
                                                    out + m * E);
  });
}

// Threads own disjoint column ranges, and each walks m in order: the sum into
// every weight element happens in the same order whatever the thread count.
template <typename T>
void embedding_backward_impl(const T* dout, const std::int64_t* idx, index_t M, index_t E,
                             T* dweight) {
  const int threads = M * E >= kParallelElems ? get_num_threads() : 1;
  parallel_for(E, threads, [&](index_t e0, index_t e1) {
    for (index_t m = 0; m < M; ++m) {
      T* dst = dweight + idx[m] * E;
      const T* src = dout + m * E;
      for (index_t e = e0; e < e1; ++e) dst[e] += src[e];
    }
  });
}

constexpr index_t kBlock = 4096;

template <typename T>
double sum_squares_impl(const T* x, index_t n) {
  const index_t nb = (n + kBlock - 1) / kBlock;
  static thread_local std::vector<double> partial;
  if (static_cast<index_t>(partial.size()) < nb) partial.resize(nb);
  double* p = partial.data();
  const int threads = n >= 8 * kBlock ? get_num_threads() : 1;
  parallel_for(nb, threads, [&](index_t begin, index_t end) {
    for (index_t b = begin; b < end; ++b) {
      const index_t i0 = b * kBlock, i1 = std::min(n, i0 + kBlock);
      double acc = 0.0;
      for (index_t i = i0; i < i1; ++i) acc += double(x[i]) * double(x[i]);
      p[b] = acc;
    }
  });
  double total = 0.0;
  for (index_t b = 0; b < nb; ++b) total += p[b];
  return total;
}

template <typename T>
void scale_impl(T* x, index_t n, double alpha) {
  const T a = T(alpha);
  const int threads = n >= 8 * kBlock ? get_num_threads() : 1;
  parallel_for(n, threads, [&](index_t begin, index_t end) {
    for (index_t i = begin; i < end; ++i) x[i] *= a;
  });
}

}  // namespace

void embedding_forward(const float* w, const std::int64_t* idx, index_t M, index_t E,
                       float* out) noexcept {
  embedding_forward_impl(w, idx, M, E, out);
}
void embedding_forward(const double* w, const std::int64_t* idx, index_t M, index_t E,
                       double* out) noexcept {
  embedding_forward_impl(w, idx, M, E, out);
}
void embedding_backward(const float* dout, const std::int64_t* idx, index_t M, index_t E,
                        float* dw) noexcept {
  embedding_backward_impl(dout, idx, M, E, dw);
}
void embedding_backward(const double* dout, const std::int64_t* idx, index_t M, index_t E,
                        double* dw) noexcept {
  embedding_backward_impl(dout, idx, M, E, dw);
}
double sum_squares(const float* x, index_t n) noexcept { return sum_squares_impl(x, n); }
double sum_squares(const double* x, index_t n) noexcept { return sum_squares_impl(x, n); }
void scale_inplace(float* x, index_t n, double alpha) noexcept { scale_impl(x, n, alpha); }
void scale_inplace(double* x, index_t n, double alpha) noexcept { scale_impl(x, n, alpha); }

}  // namespace neuropil
