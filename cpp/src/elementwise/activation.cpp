// Activations, bias epilogue and bias gradient (see neuropil/elementwise.h).
#include <cmath>
#include <vector>

#include "neuropil/cpu.h"
#include "neuropil/elementwise.h"
#include "pointwise_kernels.h"
#include "util.h"

namespace neuropil {
using elementwise_detail::threads_for;

namespace {

template <typename T>
inline T sigmoid1(T x) {
  const T e = std::exp(-std::abs(x));
  const T r = T(1) / (T(1) + e);
  return x >= T(0) ? r : e * r;
}

template <typename T>
void act_range(Activation act, const T* x, T* y, index_t n) {
  switch (act) {
    case Activation::Identity:
      if (x != y)
        for (index_t i = 0; i < n; ++i) y[i] = x[i];
      break;
    case Activation::Relu:
      for (index_t i = 0; i < n; ++i) y[i] = x[i] < T(0) ? T(0) : x[i];
      break;
    case Activation::Sigmoid:
      for (index_t i = 0; i < n; ++i) y[i] = sigmoid1(x[i]);
      break;
    case Activation::Tanh:
      for (index_t i = 0; i < n; ++i) y[i] = std::tanh(x[i]);
      break;
  }
}

// y = act(x + b) over one row of C.
template <typename T>
void bias_act_row(Activation act, const T* x, const T* b, T* y, index_t C) {
  switch (act) {
    case Activation::Identity:
      for (index_t c = 0; c < C; ++c) y[c] = x[c] + b[c];
      break;
    case Activation::Relu:
      for (index_t c = 0; c < C; ++c) {
        const T v = x[c] + b[c];
        y[c] = v < T(0) ? T(0) : v;
      }
      break;
    case Activation::Sigmoid:
      for (index_t c = 0; c < C; ++c) y[c] = sigmoid1(x[c] + b[c]);
      break;
    case Activation::Tanh:
      for (index_t c = 0; c < C; ++c) y[c] = std::tanh(x[c] + b[c]);
      break;
  }
}

constexpr index_t kBiasChunk = 512;  // rows per partial column sum (fixed: determinism)

// The parametrised activations: each element by itself, so any split of [0, n)
// over threads gives the same bits; the ISA picks the build of the chunk loop.
using pointwise_detail::Op;
template <typename T>
using PointwiseArgs = pointwise_detail::Args<T>;

void pointwise_chunk(bool backward, const PointwiseArgs<float>& a, index_t b, index_t e) {
#ifdef NEUROPIL_HAVE_AVX512
  if (active_isa() >= Isa::Avx512) {
    backward ? pointwise_detail::backward_avx512(a, b, e) : pointwise_detail::forward_avx512(a, b, e);
    return;
  }
#endif
#ifdef NEUROPIL_HAVE_AVX2
  if (active_isa() >= Isa::Avx2) {
    backward ? pointwise_detail::backward_avx2(a, b, e) : pointwise_detail::forward_avx2(a, b, e);
    return;
  }
#endif
  backward ? pointwise_detail::backward_generic(a, b, e) : pointwise_detail::forward_generic(a, b, e);
}

void pointwise_chunk(bool backward, const PointwiseArgs<double>& a, index_t b, index_t e) {
  backward ? pointwise_detail::backward_generic(a, b, e) : pointwise_detail::forward_generic(a, b, e);
}

template <typename T>
void run_pointwise(bool backward, index_t n, const PointwiseArgs<T>& a) {
  if (n <= 0) return;
  // LeakyReLU is one compare per element; the others a transcendental or two.
  const index_t work = a.op == Op::LeakyRelu ? n : n * 8;
  parallel_for(n, threads_for(work), [&](index_t b, index_t e) { pointwise_chunk(backward, a, b, e); });
}

}  // namespace

template <typename T>
void leaky_relu_forward(T negative_slope, index_t n, const T* x, T* y) noexcept {
  run_pointwise(false, n, PointwiseArgs<T>{Op::LeakyRelu, negative_slope, T(0), false, x, nullptr, y});
}
template <typename T>
void leaky_relu_backward(T negative_slope, index_t n, const T* s, const T* dy, T* dx) noexcept {
  run_pointwise(true, n, PointwiseArgs<T>{Op::LeakyRelu, negative_slope, T(0), false, s, dy, dx});
}
template <typename T>
void elu_forward(T alpha, index_t n, const T* x, T* y) noexcept {
  run_pointwise(false, n, PointwiseArgs<T>{Op::Elu, alpha, T(0), false, x, nullptr, y});
}
template <typename T>
void elu_backward(T alpha, bool from_output, index_t n, const T* s, const T* dy, T* dx) noexcept {
  run_pointwise(true, n, PointwiseArgs<T>{Op::Elu, alpha, T(0), from_output, s, dy, dx});
}
template <typename T>
void gelu_forward(GeluApprox approx, index_t n, const T* x, T* y) noexcept {
  const Op op = approx == GeluApprox::Tanh ? Op::GeluTanh : Op::GeluErf;
  run_pointwise(false, n, PointwiseArgs<T>{op, T(0), T(0), false, x, nullptr, y});
}
template <typename T>
void gelu_backward(GeluApprox approx, index_t n, const T* x, const T* dy, T* dx) noexcept {
  const Op op = approx == GeluApprox::Tanh ? Op::GeluTanh : Op::GeluErf;
  run_pointwise(true, n, PointwiseArgs<T>{op, T(0), T(0), false, x, dy, dx});
}
template <typename T>
void softplus_forward(T beta, T threshold, index_t n, const T* x, T* y) noexcept {
  run_pointwise(false, n, PointwiseArgs<T>{Op::Softplus, beta, threshold, false, x, nullptr, y});
}
template <typename T>
void softplus_backward(T beta, T threshold, index_t n, const T* x, const T* dy, T* dx) noexcept {
  run_pointwise(true, n, PointwiseArgs<T>{Op::Softplus, beta, threshold, false, x, dy, dx});
}

template <typename T>
void activation_forward(Activation act, index_t n, const T* x, T* y) noexcept {
  if (n <= 0 || (act == Activation::Identity && x == y)) return;
  const index_t work = act == Activation::Relu || act == Activation::Identity ? n : n * 8;
  parallel_for(n, threads_for(work), [&](index_t b, index_t e) { act_range(act, x + b, y + b, e - b); });
}

template <typename T>
void activation_backward(Activation act, index_t n, const T* y, const T* dy, T* dx) noexcept {
  if (n <= 0) return;
  parallel_for(n, threads_for(n), [&](index_t b, index_t e) {
    switch (act) {
      case Activation::Identity:
        if (dx != dy)
          for (index_t i = b; i < e; ++i) dx[i] = dy[i];
        break;
      case Activation::Relu:
        // Both loads unconditional so the select compiles to a vector blend
        // (a conditional load of dy[i] would stay a mispredicted branch).
        for (index_t i = b; i < e; ++i) {
          const T g = dy[i];
          dx[i] = y[i] > T(0) ? g : T(0);
        }
        break;
      case Activation::Sigmoid:
        for (index_t i = b; i < e; ++i) dx[i] = dy[i] * y[i] * (T(1) - y[i]);
        break;
      case Activation::Tanh:
        for (index_t i = b; i < e; ++i) dx[i] = dy[i] * (T(1) - y[i] * y[i]);
        break;
    }
  });
}

template <typename T>
void bias_activation(Activation act, index_t N, index_t C, const T* x, const T* bias,
                     T* y) noexcept {
  if (N <= 0 || C <= 0) return;
  if (bias == nullptr) {
    activation_forward(act, N * C, x, y);
    return;
  }
  const index_t work = (act == Activation::Relu || act == Activation::Identity ? 1 : 8) * N * C;
  parallel_for(N, threads_for(work), [&](index_t b, index_t e) {
    for (index_t n = b; n < e; ++n) bias_act_row(act, x + n * C, bias, y + n * C, C);
  });
}

template <typename T>
void bias_grad(index_t N, index_t C, const T* dy, T beta, T* db) noexcept {
  if (C <= 0) return;
  const index_t nchunks = N > 0 ? (N + kBiasChunk - 1) / kBiasChunk : 0;
  // Column blocks of 64: each column's sum is computed by one thread, rows in order.
  constexpr index_t kCols = 64;
  const index_t nblocks = (C + kCols - 1) / kCols;
  auto column_sums = [&](index_t r0, index_t r1, index_t c0, index_t c1, T* out) {
    for (index_t c = c0; c < c1; ++c) out[c - c0] = T(0);
    for (index_t r = r0; r < r1; ++r) {
      const T* row = dy + r * C;
      for (index_t c = c0; c < c1; ++c) out[c - c0] += row[c];
    }
  };
  if (nchunks <= 1) {
    parallel_for(nblocks, threads_for(N * C), [&](index_t b, index_t e) {
      T acc[kCols];
      for (index_t blk = b; blk < e; ++blk) {
        const index_t c0 = blk * kCols, c1 = std::min(C, c0 + kCols);
        column_sums(0, N, c0, c1, acc);
        for (index_t c = c0; c < c1; ++c)
          db[c] = beta == T(0) ? acc[c - c0] : beta * db[c] + acc[c - c0];
      }
    });
    return;
  }
  // Many rows: partial sums per fixed row chunk, then folded in chunk order.
  std::vector<T> part(static_cast<std::size_t>(nchunks * C));
  parallel_for(nchunks * nblocks, threads_for(N * C), [&](index_t b, index_t e) {
    for (index_t t = b; t < e; ++t) {
      const index_t k = t / nblocks, blk = t % nblocks;
      const index_t c0 = blk * kCols, c1 = std::min(C, c0 + kCols);
      column_sums(k * kBiasChunk, std::min(N, (k + 1) * kBiasChunk), c0, c1,
                  part.data() + k * C + c0);
    }
  });
  parallel_for(C, threads_for(nchunks * C), [&](index_t b, index_t e) {
    for (index_t c = b; c < e; ++c) {
      T s = part[c];
      for (index_t k = 1; k < nchunks; ++k) s += part[k * C + c];
      db[c] = beta == T(0) ? s : beta * db[c] + s;
    }
  });
}

#define NEUROPIL_INSTANTIATE(T)                                                             \
  template void activation_forward<T>(Activation, index_t, const T*, T*) noexcept;          \
  template void activation_backward<T>(Activation, index_t, const T*, const T*, T*) noexcept; \
  template void bias_activation<T>(Activation, index_t, index_t, const T*, const T*, T*) noexcept; \
  template void bias_grad<T>(index_t, index_t, const T*, T, T*) noexcept;                   \
  template void leaky_relu_forward<T>(T, index_t, const T*, T*) noexcept;                   \
  template void leaky_relu_backward<T>(T, index_t, const T*, const T*, T*) noexcept;        \
  template void elu_forward<T>(T, index_t, const T*, T*) noexcept;                          \
  template void elu_backward<T>(T, bool, index_t, const T*, const T*, T*) noexcept;         \
  template void gelu_forward<T>(GeluApprox, index_t, const T*, T*) noexcept;                \
  template void gelu_backward<T>(GeluApprox, index_t, const T*, const T*, T*) noexcept;     \
  template void softplus_forward<T>(T, T, index_t, const T*, T*) noexcept;                  \
  template void softplus_backward<T>(T, T, index_t, const T*, const T*, T*) noexcept;
NEUROPIL_INSTANTIATE(float)
NEUROPIL_INSTANTIATE(double)
#undef NEUROPIL_INSTANTIATE

}  // namespace neuropil
