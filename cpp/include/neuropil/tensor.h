// Data movement and sums that models beyond a stack need: elementwise addition
// (merge layers, gradients summed where an output feeds two places) and strided
// block copies (concatenation along a dimension and its adjoint, the split).
#pragma once
#include "neuropil/common.h"

namespace neuropil {

// out[i] = a[i] + b[i], i < n. out may be a or b (same index in place); any
// other overlap is the caller's error. Each element is independent: the same
// bits for any thread count.
void add(index_t n, const float* a, const float* b, float* out) noexcept;
void add(index_t n, const double* a, const double* b, double* out) noexcept;

// Block copy: for o < outer, dst[o*dst_row + dst_off + j] = src[o*src_row + src_off + j],
// j < len. A C-contiguous array seen as (outer, axis*inner): concatenation copies each
// input into its column range of the output (src_off 0), the split copies it back out
// (dst_off 0). src and dst must not overlap. Works on raw bytes (elem = item size).
void copy_blocks(index_t outer, index_t len, const void* src, index_t src_row,
                 index_t src_off, void* dst, index_t dst_row, index_t dst_off,
                 index_t elem) noexcept;

}  // namespace neuropil
