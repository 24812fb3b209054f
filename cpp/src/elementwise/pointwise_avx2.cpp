// AVX2 build of the parametrised activations (pointwise_kernels.inc), float,
// 8 lanes. Built with -mavx2 -fno-trapping-math -ffp-contract=off and without
// -mfma (an FMA rounds once where the portable build rounds twice), so the
// results are bitwise those of the portable build (tested). Internal linkage
// except the entry points, called only after CPU detection chose AVX2.
#include <cstdint>

#include "pointwise_kernels.h"

namespace neuropil {
namespace pointwise_detail {
namespace {
#include "pointwise_kernels.inc"
}  // namespace

void forward_avx2(const Args<float>& a, index_t begin, index_t end) {
  forward_rows(a, begin, end);
}
void backward_avx2(const Args<float>& a, index_t begin, index_t end) {
  backward_rows(a, begin, end);
}

}  // namespace pointwise_detail
}  // namespace neuropil
