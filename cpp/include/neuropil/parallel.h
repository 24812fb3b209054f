// The one place where neuropil starts threads (STYLE rule 5).
//
// parallel_for(n, fn) calls fn(begin, end) over a static partition of [0, n)
// into contiguous chunks, one per thread, on the OpenMP pool (threads are
// reused; no per-call start-up beyond waking them). Chunk boundaries may
// depend on the thread count, so callers must make every index's result
// independent of which chunk computed it (no float reductions across chunks).
// Never nest calls: inside fn, run serially. (A nested call, e.g. gemm called
// from a per-image loop, runs inline on the calling thread.)
//
// Threads and processes: any number of threads may call kernels at once (each
// caller gets its own OpenMP team; scratch buffers are per thread). After
// fork(), the child runs kernels on 1 thread until set_num_threads() is
// called there; regions the forking thread starts then run on a helper thread
// of the child, since the OpenMP pool it inherited has no workers.
#pragma once
#include <functional>
#include "neuropil/common.h"

namespace neuropil {

// Threads used by kernels: min(set_num_threads value, OpenMP's limit for the
// calling thread, which is where OMP_NUM_THREADS and threadpoolctl act).
int get_num_threads();
void set_num_threads(int n);
bool openmp_enabled();
bool fork_handler_installed();  // the pthread_atfork handler above is registered
int forks_survived();           // fork()s this process came out of as the child
int openmp_version();  // _OPENMP date, 0 without OpenMP

// threads: how many to use at most (1 runs fn(0, n) inline on the caller).
void parallel_for(index_t n, int threads, const std::function<void(index_t, index_t)>& fn);

// parallel_region(threads, fn) runs fn(tid, nthreads, barrier) once on each of
// nthreads <= threads threads together; barrier() waits for all of them. For
// work in phases (pack, then compute, then the next block) that would
// otherwise wake the pool once per phase: one wake per call instead. Every
// thread must call barrier() the same number of times. Nested inside another
// region (or with threads == 1) it runs fn(0, 1, no-op) on the caller.
using Barrier = std::function<void()>;
void parallel_region(int threads, const std::function<void(int, int, const Barrier&)>& fn);

// The team size a parallel_region(threads, ...) started now gets (what runs,
// not what was asked for): lets tests see that threads really work.
int parallel_team_size(int threads);

}  // namespace neuropil
