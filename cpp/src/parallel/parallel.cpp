// The single OpenMP entry point of the core (see parallel.h).
#include "neuropil/parallel.h"

#include <algorithm>
#include <atomic>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace neuropil {
namespace {
// 0 means "not set": use OpenMP's own limit.
std::atomic<int> g_threads{0};
// True on a thread while it runs a parallel_for body: a nested call (e.g. a
// GEMM inside a per-image loop) then runs inline instead of nesting regions.
thread_local bool t_inside = false;
}  // namespace

bool openmp_enabled() {
#ifdef _OPENMP
  return true;
#else
  return false;
#endif
}

int openmp_version() {
#ifdef _OPENMP
  return _OPENMP;
#else
  return 0;
#endif
}

int get_num_threads() {
#ifdef _OPENMP
  int limit = omp_get_max_threads();
  int set = g_threads.load(std::memory_order_relaxed);
  int n = set > 0 ? std::min(set, limit) : limit;
  return std::max(n, 1);
#else
  return 1;
#endif
}

void set_num_threads(int n) {
  n = std::max(n, 1);
  g_threads.store(n, std::memory_order_relaxed);
#ifdef _OPENMP
  // Keep OpenMP's own view (what threadpoolctl reads) in step.
  omp_set_num_threads(n);
#endif
}

void parallel_for(index_t n, int threads, const std::function<void(index_t, index_t)>& fn) {
  if (n <= 0) return;
  index_t t = std::min<index_t>(std::max(threads, 1), n);
  if (t <= 1 || t_inside) {
    fn(0, n);
    return;
  }
#ifdef _OPENMP
#pragma omp parallel num_threads(static_cast<int>(t))
  {
    index_t nt = omp_get_num_threads();
    index_t id = omp_get_thread_num();
    index_t begin = n * id / nt;
    index_t end = n * (id + 1) / nt;
    const bool was_inside = t_inside;
    t_inside = true;
    if (begin < end) fn(begin, end);
    t_inside = was_inside;
  }
#else
  fn(0, n);
#endif
}

void parallel_region(int threads, const std::function<void(int, int, const Barrier&)>& fn) {
  const Barrier none = [] {};
  int t = std::max(threads, 1);
  if (t <= 1 || t_inside) {
    fn(0, 1, none);
    return;
  }
#ifdef _OPENMP
#pragma omp parallel num_threads(t)
  {
    const Barrier barrier = [] {
#pragma omp barrier
    };
    const bool was_inside = t_inside;
    t_inside = true;
    fn(omp_get_thread_num(), omp_get_num_threads(), barrier);
    t_inside = was_inside;
  }
#else
  fn(0, 1, none);
#endif
}

}  // namespace neuropil
