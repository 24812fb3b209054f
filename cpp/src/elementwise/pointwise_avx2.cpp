// AVX2 build of the parametrised activations (pointwise_kernels.inc), float,
// 8 lanes, with FMA contraction (-mavx2 -mfma -ffp-contract=fast: GELU 1.6x
// faster than without): results may differ from the portable build's in the
// last bit or two (tested within a few ulp), and are the same for any thread
// count. Internal linkage except the entry points, called only after CPU
// detection chose AVX2 (which implies FMA).
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
