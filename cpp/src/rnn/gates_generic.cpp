// Portable fused gate kernels (float and double): the code is gates.inc.
#include <cstdint>

#include "rnn_kernels.h"

namespace neuropil {
namespace rnn_detail {
namespace {
#include "gates.inc"
}  // namespace

void gate_forward_generic(const GateStep<float>& s, index_t n, index_t j0, index_t j1) {
  gate_forward_rows(s, n, j0, j1);
}
void gate_forward_generic(const GateStep<double>& s, index_t n, index_t j0, index_t j1) {
  gate_forward_rows(s, n, j0, j1);
}
void gate_backward_generic(const GateStep<float>& s, index_t n, index_t j0, index_t j1) {
  gate_backward_rows(s, n, j0, j1);
}
void gate_backward_generic(const GateStep<double>& s, index_t n, index_t j0, index_t j1) {
  gate_backward_rows(s, n, j0, j1);
}

}  // namespace rnn_detail
}  // namespace neuropil
