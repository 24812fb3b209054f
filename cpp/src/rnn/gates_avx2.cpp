// AVX2 build of the fused gate kernels (float): the same code as
// gates_generic.cpp (gates.inc), vectorised 8-wide. Built with -mavx2 -mfma;
// internal linkage except the two entry points, called only after CPU
// detection chose AVX2. GCC contracts a * b + c into FMAs here (in C++ it
// does so even in ISO mode), so results can differ from the portable build in
// the last bits; each build gives the same bits for any thread count.
#include <cstdint>

#include "rnn_kernels.h"

namespace neuropil {
namespace rnn_detail {
namespace {
#include "gates.inc"
}  // namespace

void gate_forward_avx2(const GateStep<float>& s, index_t n, index_t j0, index_t j1) {
  gate_forward_rows(s, n, j0, j1);
}
void gate_backward_avx2(const GateStep<float>& s, index_t n, index_t j0, index_t j1) {
  gate_backward_rows(s, n, j0, j1);
}

}  // namespace rnn_detail
}  // namespace neuropil
