// Chunk kernels of the parametrised activations (LeakyReLU, ELU, GELU, Softplus),
// internal to cpp/src/elementwise. One source, pointwise_kernels.inc, is built
// portable (pointwise_generic.cpp: float and double) and, for float, with AVX2
// (pointwise_avx2.cpp) and AVX-512F (pointwise_avx512.cpp), those two with FMA
// contraction (within a few ulp of the portable build; tested); activation.cpp
// picks one by the active ISA.
//
// Shared by the portable and the ISA-specific translation units: declarations
// only (STYLE rule 4).
#pragma once
#include "neuropil/common.h"

namespace neuropil {
namespace pointwise_detail {

enum class Op : int { LeakyRelu = 0, Elu = 1, GeluErf = 2, GeluTanh = 3, Softplus = 4 };

// One call's arguments. p0, p1: negative_slope | alpha | - | beta, threshold.
// Forward reads src = x and writes out = y. Backward reads src (x, or y where
// from_output says so), dy, and writes out = dx. out may equal src or dy.
template <typename T>
struct Args {
  Op op;
  T p0, p1;
  bool from_output;
  const T* src;
  const T* dy;
  T* out;
};

// Elements [begin, end) of one call.
void forward_generic(const Args<float>& a, index_t begin, index_t end);
void forward_generic(const Args<double>& a, index_t begin, index_t end);
void backward_generic(const Args<float>& a, index_t begin, index_t end);
void backward_generic(const Args<double>& a, index_t begin, index_t end);
#ifdef NEUROPIL_HAVE_AVX2
// Call only when the active ISA is AVX2 or better.
void forward_avx2(const Args<float>& a, index_t begin, index_t end);
void backward_avx2(const Args<float>& a, index_t begin, index_t end);
#endif
#ifdef NEUROPIL_HAVE_AVX512
// Call only when the active ISA is AVX-512.
void forward_avx512(const Args<float>& a, index_t begin, index_t end);
void backward_avx512(const Args<float>& a, index_t begin, index_t end);
#endif

}  // namespace pointwise_detail
}  // namespace neuropil
