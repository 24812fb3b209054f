// Elementwise kernels: activations, bias, softmax, dropout (losses: neuropil/loss.h).
//
// Conventions (all functions, T = float or double, explicitly instantiated):
//   - Row-major, C-contiguous buffers; a "row" is the last axis. Sizes are index_t.
//   - Inputs first (const T*), sizes, then outputs last; noexcept; no allocation the
//     caller sees (a reduction may keep a small vector of per-chunk partials).
//   - "in place allowed" means the output pointer may EQUAL the named input; any other
//     overlap is undefined (the bindings reject it).
//   - NaN propagates through forward kernels (never trapped, never turned into a crash).
//   - Work is split over rows / fixed blocks with parallel_for. Every output element is
//     computed by one thread with the same operations whatever the thread count; every
//     reduction (bias gradient) folds partials of FIXED-size chunks in chunk
//     order, so results are bitwise identical for any number of threads.
#pragma once
#include <cstdint>

#include "neuropil/common.h"

namespace neuropil {

enum class Activation : int { Identity = 0, Relu = 1, Sigmoid = 2, Tanh = 3 };

// --- activations -----------------------------------------------------------
// activation_forward: y[n] = act(x[n]) over n elements; in place allowed (y == x).
//   relu(x)    = x < 0 ? 0 : x            (NaN stays NaN)
//   sigmoid(x) = e^x / (1 + e^x), computed as 1/(1+e^-|x|) for x >= 0 and
//                e^-|x| / (1+e^-|x|) otherwise: no overflow for any |x|; +-inf -> 1, 0.
//   tanh(x)    = std::tanh(x)
//   identity   = copy (nothing when y == x)
template <typename T>
void activation_forward(Activation act, index_t n, const T* x, T* y) noexcept;

// activation_backward: dx[n] = dy[n] * act'(x[n]), written through the cached OUTPUT
// y = act(x), so the input need not be kept:
//   relu: y > 0 ? dy : 0;  sigmoid: dy * y * (1 - y);  tanh: dy * (1 - y*y);  identity: dy.
// In place allowed (dx == dy).
template <typename T>
void activation_backward(Activation act, index_t n, const T* y, const T* dy, T* dx) noexcept;

// --- parametrised activations (PyTorch's definitions) ---------------------------
// Over n elements; out may equal an input (in place), no other overlap. NaN in x
// gives NaN out in every forward and in every backward that reads x (LeakyReLU's
// backward reads only the sign test, as PyTorch's). float runs vectorised
// approximations (a few ulp; the AVX2/AVX-512 builds use FMA, so the last bit may
// differ between ISAs, never between thread counts), double runs libm.
//
// leaky_relu: y = x > 0 ? x : negative_slope * x
//   backward:  dx = s > 0 ? dy : negative_slope * dy, where s is the input x, or
//              the output y when negative_slope >= 0 (then y > 0 exactly when x > 0).
template <typename T>
void leaky_relu_forward(T negative_slope, index_t n, const T* x, T* y) noexcept;
template <typename T>
void leaky_relu_backward(T negative_slope, index_t n, const T* s, const T* dy, T* dx) noexcept;

// elu: y = x > 0 ? x : alpha * (e^x - 1)            (expm1: exact near 0)
//   backward from the input (from_output false): dx = x > 0 ? dy : dy * alpha e^x
//   backward from the output (alpha >= 0 only):  dx = y > 0 ? dy : dy * (y + alpha)
//   (no exponential; y + alpha loses relative accuracy as e^x underflows, but its
//   absolute error stays below alpha * ulp(1)). At x = 0 both give alpha * dy, as PyTorch.
template <typename T>
void elu_forward(T alpha, index_t n, const T* x, T* y) noexcept;
template <typename T>
void elu_backward(T alpha, bool from_output, index_t n, const T* s, const T* dy, T* dx) noexcept;

// gelu (approximate None): y = x Phi(x), Phi(x) = erfc(-x / sqrt 2) / 2 (the normal CDF)
//   backward: dx = dy * (Phi(x) + x e^(-x^2/2) / sqrt(2 pi))
// gelu (approximate Tanh): y = x / 2 * (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3),
//   computed as x * sigmoid(2u) (the same function, no cancellation in the left tail)
//   backward: dx = dy * (s + x s (1 - s) 2 sqrt(2/pi) (1 + 3 * 0.044715 x^2)), s = sigmoid(2u)
// float Phi keeps relative accuracy in the left tail (~5 ulp down to x = -13, where
// it becomes subnormal). gelu(+inf) = inf; gelu(-inf) = NaN (-inf * 0, as PyTorch).
enum class GeluApprox : int { None = 0, Tanh = 1 };
template <typename T>
void gelu_forward(GeluApprox approx, index_t n, const T* x, T* y) noexcept;
template <typename T>
void gelu_backward(GeluApprox approx, index_t n, const T* x, const T* dy, T* dx) noexcept;

// softplus: z = beta x;  y = z > threshold ? x : log(1 + e^z) / beta   (beta != 0)
//   backward: dx = z > threshold ? dy : dy * sigmoid(z)
// PyTorch's threshold rule; log(1 + e^z) is evaluated as max(z, 0) + log1p(e^-|z|),
// so it stays finite for any threshold (PyTorch overflows to inf above z ~ 88).
template <typename T>
void softplus_forward(T beta, T threshold, index_t n, const T* x, T* y) noexcept;
template <typename T>
void softplus_backward(T beta, T threshold, index_t n, const T* x, const T* dy, T* dx) noexcept;

// --- bias ------------------------------------------------------------------
// bias_activation: y[N, C] = act(x[N, C] + bias[C]) (row broadcast), one pass over
// memory; the epilogue applied right after a GEMM wrote x. bias == nullptr: act only.
// In place allowed (y == x): this is how linear_forward uses it.
template <typename T>
void bias_activation(Activation act, index_t N, index_t C, const T* x, const T* bias,
                     T* y) noexcept;

// bias_grad: db[C] = beta * db[C] + sum_{n<N} dy[n, c]   (column sums over the batch).
// beta == 0: db is write-only (NaN there never leaks). Rows are summed in fixed
// chunks of 512 (each chunk row by row, in order), chunk partials folded in order.
template <typename T>
void bias_grad(index_t N, index_t C, const T* dy, T beta, T* db) noexcept;

// --- softmax over the last axis ---------------------------------------------
// softmax:     y[n, c] = exp(x[n,c] - m_n) / sum_k exp(x[n,k] - m_n),  m_n = max_k x[n,k]
// log_softmax: y[n, c] = x[n,c] - m_n - log(sum_k exp(x[n,k] - m_n))
// Stable for any finite x (max subtraction). In place allowed. A row containing NaN
// gives NaN; a row of all -inf gives NaN (as PyTorch).
template <typename T>
void softmax_forward(index_t N, index_t C, const T* x, T* y) noexcept;
template <typename T>
void log_softmax_forward(index_t N, index_t C, const T* x, T* y) noexcept;

// softmax_backward:     dx[n, c] = y[n,c] * (dy[n,c] - sum_k dy[n,k] y[n,k])   (y = softmax)
// log_softmax_backward: dx[n, c] = dy[n,c] - exp(y[n,c]) * sum_k dy[n,k]      (y = log_softmax)
// In place allowed (dx == dy).
// argmax_rows: x [N, C] -> idx [N], the column of each row's maximum; ties go
// to the first, and a NaN counts as the maximum (as numpy.argmax). C >= 1.
template <typename T>
void argmax_rows(index_t N, index_t C, const T* x, std::int64_t* idx) noexcept;

template <typename T>
void softmax_backward(index_t N, index_t C, const T* y, const T* dy, T* dx) noexcept;
template <typename T>
void log_softmax_backward(index_t N, index_t C, const T* y, const T* dy, T* dx) noexcept;

// Losses (cross-entropy, NLL, MSE, L1, BCE): neuropil/loss.h.

// --- dropout (inverted) -------------------------------------------------------
// keep_i = (splitmix64(seed + (i + 1) * 0x9E3779B97F4A7C15) >> 32) >= round(p * 2^32)
// dropout_forward:  y_i = keep_i ? x_i / (1 - p) : 0        (0 <= p < 1)
// dropout_backward: dx_i = keep_i ? dy_i / (1 - p) : 0      (same seed -> same mask)
// The mask is a pure function of (seed, i): identical for any thread count, and
// backward regenerates it instead of storing it. In place allowed.
template <typename T>
void dropout_forward(index_t n, double p, std::uint64_t seed, const T* x, T* y) noexcept;
template <typename T>
void dropout_backward(index_t n, double p, std::uint64_t seed, const T* dy, T* dx) noexcept;

// dropout_channels (Dropout2d): x [P, S] seen as P = N*C planes of S = H*W elements;
// keep_q = (splitmix64(seed + (q + 1) * 0x9E3779B97F4A7C15) >> 32) >= round(p * 2^32),
// the hash above keyed by the plane index q = n*C + c:
//   y[q, :] = keep_q ? x[q, :] / (1 - p) : 0      (0 <= p < 1)
// Its backward is the same call on dy with the same seed (the mask is regenerated).
// The mask depends only on (seed, q): identical for any thread count. In place allowed.
template <typename T>
void dropout_channels(index_t P, index_t S, double p, std::uint64_t seed, const T* x,
                      T* y) noexcept;

}  // namespace neuropil
