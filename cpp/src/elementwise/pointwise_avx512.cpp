// AVX-512F build of the parametrised activations (pointwise_kernels.inc),
// float, 16 lanes, with FMA contraction (-mavx512f -mprefer-vector-width=512
// -ffp-contract=fast): within a few ulp of the portable build (tested), the
// same for any thread count. Internal linkage except the entry points, called
// only after CPU detection chose AVX-512.
#include <cstdint>

#include "pointwise_kernels.h"

namespace neuropil {
namespace pointwise_detail {
namespace {
#include "pointwise_kernels.inc"
}  // namespace

void forward_avx512(const Args<float>& a, index_t begin, index_t end) {
  forward_rows(a, begin, end);
}
void backward_avx512(const Args<float>& a, index_t begin, index_t end) {
  backward_rows(a, begin, end);
}

}  // namespace pointwise_detail
}  // namespace neuropil
