// Portable build of the parametrised activations (pointwise_kernels.inc): float
// with the vectorisable approximations (SSE2 on x86-64), double with libm.
// Built with -fno-trapping-math (so GCC if-converts the selects) and
// -ffp-contract=off: the reference build, each operation rounded once.
#include <cstdint>

#include "pointwise_kernels.h"

namespace neuropil {
namespace pointwise_detail {
namespace {
#include "pointwise_kernels.inc"
}  // namespace

void forward_generic(const Args<float>& a, index_t begin, index_t end) {
  forward_rows(a, begin, end);
}
void forward_generic(const Args<double>& a, index_t begin, index_t end) {
  forward_rows(a, begin, end);
}
void backward_generic(const Args<float>& a, index_t begin, index_t end) {
  backward_rows(a, begin, end);
}
void backward_generic(const Args<double>& a, index_t begin, index_t end) {
  backward_rows(a, begin, end);
}

}  // namespace pointwise_detail
}  // namespace neuropil
