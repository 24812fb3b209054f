// The single OpenMP entry point of the core (see parallel.h).
//
// Fork safety. libgomp keeps, per thread that starts parallel regions, a pool
// of docked worker threads. fork() copies the pool's bookkeeping into the
// child but not its threads, so the child's first parallel region waits at
// the dock barrier for workers that do not exist: it hangs forever. An
// atfork handler therefore marks the child: kernels run serially there (the
// thread count drops to 1, as PyTorch does) until the user sets a thread
// count again; then the surviving thread hands each parallel region to a
// helper thread started in the child, whose OpenMP pool is new and whole.
#include "neuropil/parallel.h"

#include "neuropil/cpu.h"

#include <algorithm>
#include <atomic>
#include <exception>
#include <thread>

#include <pthread.h>

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
// True on the thread that called fork(), in the child: its OpenMP pool (if
// it had one) is the parent's, whose workers were not copied.
thread_local bool t_forked = false;
std::atomic<int> g_forks{0};  // forks this process has come out of

// Runs parallel regions for the forked thread, on a thread of the child's own.
// One caller at a time (only the forked thread uses it). Leaked on purpose:
// after a further fork its thread is gone, and a std::thread whose thread
// vanished must be neither joined nor destroyed. (POSIX mutex and condition
// variable: std::condition_variable::wait would tie the wheel to GCC 12's
// libstdc++, GLIBCXX_3.4.30.)
class RegionRunner {
 public:
  RegionRunner() {
    pthread_mutex_init(&mutex_, nullptr);
    pthread_cond_init(&wake_, nullptr);
    pthread_cond_init(&finished_, nullptr);
    std::thread([this] { loop(); }).detach();
  }

  void run(const std::function<void()>& job) {
    pthread_mutex_lock(&mutex_);
    job_ = &job;
    error_ = nullptr;
    done_ = false;
    pthread_cond_signal(&wake_);
    while (!done_) pthread_cond_wait(&finished_, &mutex_);
    std::exception_ptr error = error_;
    pthread_mutex_unlock(&mutex_);
    if (error) std::rethrow_exception(error);
  }

 private:
  void loop() {
    pthread_mutex_lock(&mutex_);
    for (;;) {
      while (!job_) pthread_cond_wait(&wake_, &mutex_);
      const std::function<void()>* job = job_;
      pthread_mutex_unlock(&mutex_);
      std::exception_ptr error;
      try {
        (*job)();
      } catch (...) {
        error = std::current_exception();
      }
      pthread_mutex_lock(&mutex_);
      job_ = nullptr;
      error_ = error;
      done_ = true;
      pthread_cond_signal(&finished_);
    }
  }

  pthread_mutex_t mutex_;
  pthread_cond_t wake_, finished_;
  const std::function<void()>* job_ = nullptr;
  std::exception_ptr error_;
  bool done_ = false;
};

RegionRunner* g_runner = nullptr;  // touched only by the forked thread

void after_fork_in_child() {
  t_forked = true;
  g_runner = nullptr;  // its thread stayed behind (leaked, see RegionRunner)
  g_threads.store(1, std::memory_order_relaxed);
  g_forks.fetch_add(1, std::memory_order_relaxed);
}

const bool g_atfork_installed = [] {
  return pthread_atfork(nullptr, nullptr, after_fork_in_child) == 0;
}();

// Runs region() as a parallel region the calling thread can start safely.
void start_region(const std::function<void()>& region) {
  if (!t_forked) {
    region();
    return;
  }
  if (!g_runner) g_runner = new RegionRunner();
  g_runner->run(region);
}
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
  // Keep OpenMP's own view (what threadpoolctl reads) in step. This changes
  // the calling thread's limit only; g_threads applies to every thread.
  omp_set_num_threads(n);
#endif
}

int forks_survived() { return g_forks.load(std::memory_order_relaxed); }

bool fork_handler_installed() { return g_atfork_installed; }

void parallel_for(index_t n, int threads, const std::function<void(index_t, index_t)>& fn) {
  if (n <= 0) return;
  index_t t = std::min<index_t>(std::max(threads, 1), n);
  if (t <= 1 || t_inside) {
    fn(0, n);
    return;
  }
#ifdef _OPENMP
  const Isa isa = active_isa();
  start_region([&] {
#pragma omp parallel num_threads(static_cast<int>(t))
    {
      const IsaScope pin(isa);  // workers use the caller's kernel family
      index_t nt = omp_get_num_threads();
      index_t id = omp_get_thread_num();
      index_t begin = n * id / nt;
      index_t end = n * (id + 1) / nt;
      const bool was_inside = t_inside;
      t_inside = true;
      if (begin < end) fn(begin, end);
      t_inside = was_inside;
    }
  });
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
  const Isa isa = active_isa();
  start_region([&] {
#pragma omp parallel num_threads(t)
    {
      const IsaScope pin(isa);  // workers use the caller's kernel family
      const Barrier barrier = [] {
#pragma omp barrier
      };
      const bool was_inside = t_inside;
      t_inside = true;
      fn(omp_get_thread_num(), omp_get_num_threads(), barrier);
      t_inside = was_inside;
    }
  });
#else
  fn(0, 1, none);
#endif
}

int parallel_team_size(int threads) {
  std::atomic<int> size{0};
  parallel_region(threads, [&](int tid, int nt, const Barrier&) {
    if (tid == 0) size.store(nt, std::memory_order_relaxed);
  });
  return size.load(std::memory_order_relaxed);
}

}  // namespace neuropil
