// Fully connected layer: gemm + epilogues (see neuropil/linear.h).
#include "neuropil/linear.h"

#include "neuropil/gemm.h"

namespace neuropil {

template <typename T>
void linear_forward(index_t N, index_t IN, index_t OUT, const T* x, const T* w, const T* b,
                    Activation act, T* y) noexcept {
  if (N <= 0 || OUT <= 0) return;
  gemm(Trans::No, Trans::Yes, N, OUT, IN, T(1), x, IN, w, IN, T(0), y, OUT);
  if (b != nullptr || act != Activation::Identity) bias_activation(act, N, OUT, y, b, y);
}

template <typename T>
void linear_backward(index_t N, index_t IN, index_t OUT, const T* x, const T* w, const T* dy,
                     T beta_w, T* dw, T beta_b, T* db, T* dx) noexcept {
  if (OUT <= 0) return;
  if (dw != nullptr && IN > 0) gemm(Trans::Yes, Trans::No, OUT, IN, N, T(1), dy, OUT, x, IN, beta_w, dw, IN);
  if (db != nullptr) bias_grad(N, OUT, dy, beta_b, db);
  if (dx != nullptr && N > 0 && IN > 0) gemm(Trans::No, Trans::No, N, IN, OUT, T(1), dy, OUT, w, IN, T(0), dx, IN);
}

#define NEUROPIL_INSTANTIATE(T)                                                               \
  template void linear_forward<T>(index_t, index_t, index_t, const T*, const T*, const T*,    \
                                  Activation, T*) noexcept;                                   \
  template void linear_backward<T>(index_t, index_t, index_t, const T*, const T*, const T*,   \
                                   T, T*, T, T*, T*) noexcept;
NEUROPIL_INSTANTIATE(float)
NEUROPIL_INSTANTIATE(double)
#undef NEUROPIL_INSTANTIATE

}  // namespace neuropil
