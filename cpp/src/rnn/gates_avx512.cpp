// AVX-512 build of the fused gate kernels (float): the same code as
// gates_generic.cpp (gates.inc), vectorised 16-wide. Built with -mavx512f
// -mfma; internal linkage except the two entry points, called only after CPU
// detection chose AVX-512. As in the AVX2 build, GCC contracts a * b + c into
// FMAs, so results can differ from the portable build in the last bits; each
// build gives the same bits for any thread count.
#include <cstdint>

#include "rnn_kernels.h"

namespace neuropil {
namespace rnn_detail {
namespace {
#include "gates.inc"
}  // namespace

void gate_forward_avx512(const GateStep<float>& s, index_t n, index_t j0, index_t j1) {
  gate_forward_rows(s, n, j0, j1);
}
void gate_backward_avx512(const GateStep<float>& s, index_t n, index_t j0, index_t j1) {
  gate_backward_rows(s, n, j0, j1);
}

}  // namespace rnn_detail
}  // namespace neuropil
