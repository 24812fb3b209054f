// Elementwise addition and block copies (see tensor.h). Memory-bound loops:
// the portable build's SSE2 vectorisation already runs them at memory speed, so
// there is no ISA-specific variant.
#include "neuropil/tensor.h"

#include <algorithm>
#include <cstring>

#include "neuropil/parallel.h"

namespace neuropil {
namespace {

// Below this many elements one thread does the work: waking the pool costs more.
constexpr index_t kAddGrain = 1 << 15;
constexpr index_t kCopyGrainBytes = 1 << 17;

template <typename T>
void add_impl(index_t n, const T* a, const T* b, T* out) noexcept {
  auto body = [=](index_t lo, index_t hi) {
    for (index_t i = lo; i < hi; ++i) out[i] = a[i] + b[i];
  };
  const int threads = n >= 2 * kAddGrain ? get_num_threads() : 1;
  parallel_for(n, threads, body);
}

}  // namespace

void add(index_t n, const float* a, const float* b, float* out) noexcept { add_impl(n, a, b, out); }
void add(index_t n, const double* a, const double* b, double* out) noexcept {
  add_impl(n, a, b, out);
}

void copy_blocks(index_t outer, index_t len, const void* src, index_t src_row, index_t src_off,
                 void* dst, index_t dst_row, index_t dst_off, index_t elem) noexcept {
  if (outer <= 0 || len <= 0) return;
  const char* s = static_cast<const char*>(src);
  char* d = static_cast<char*>(dst);
  const std::size_t bytes = static_cast<std::size_t>(len * elem);
  auto body = [=](index_t lo, index_t hi) {
    for (index_t o = lo; o < hi; ++o)
      std::memcpy(d + (o * dst_row + dst_off) * elem, s + (o * src_row + src_off) * elem, bytes);
  };
  const index_t total = outer * len * elem;
  const int threads = total >= 2 * kCopyGrainBytes ? get_num_threads() : 1;
  if (outer >= threads) {
    parallel_for(outer, threads, body);
    return;
  }
  // Few long rows (e.g. concatenation along dim 0 of a batch): split each row instead.
  const index_t pieces = std::max<index_t>(1, threads / outer + 1);
  parallel_for(outer * pieces, threads, [=](index_t lo, index_t hi) {
    for (index_t k = lo; k < hi; ++k) {
      const index_t o = k / pieces, p = k % pieces;
      const index_t j0 = len * p / pieces, j1 = len * (p + 1) / pieces;
      std::memcpy(d + (o * dst_row + dst_off + j0) * elem,
                  s + (o * src_row + src_off + j0) * elem,
                  static_cast<std::size_t>((j1 - j0) * elem));
    }
  });
}

}  // namespace neuropil
