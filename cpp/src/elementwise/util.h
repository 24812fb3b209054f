// Internal helpers of the elementwise family (portable code only; never include this
// from an ISA-specific translation unit).
#pragma once
#include <algorithm>
#include <vector>

#include "neuropil/common.h"
#include "neuropil/parallel.h"

namespace neuropil {
namespace elementwise_detail {

// Threads worth waking for `work` elements of cheap arithmetic (callers weight
// transcendental work x8). Waking the pool costs a few microseconds on a quiet machine,
// and a whole descheduling slice (ms) when a CPU is time-sliced away, while 128K
// elements of a memory-bound loop take ~20 us on one core: below that, one thread.
inline int threads_for(index_t work) {
  return work >= (index_t(1) << 17) ? get_num_threads() : 1;
}

// Sum of f(begin, end) over fixed chunks [k*chunk, min(n, (k+1)*chunk)), folded in
// chunk order: the chunking does not depend on the thread count, so neither does
// the result.
template <typename F>
double chunked_sum(index_t n, index_t chunk, int threads, F&& f) {
  if (n <= 0) return 0.0;
  const index_t nchunks = (n + chunk - 1) / chunk;
  if (nchunks == 1) return f(index_t(0), n);
  std::vector<double> part(static_cast<std::size_t>(nchunks));
  parallel_for(nchunks, threads, [&](index_t b, index_t e) {
    for (index_t k = b; k < e; ++k) part[k] = f(k * chunk, std::min(n, (k + 1) * chunk));
  });
  double s = 0.0;
  for (double p : part) s += p;
  return s;
}

}  // namespace elementwise_detail
}  // namespace neuropil
