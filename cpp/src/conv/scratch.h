// Grow-only, 64-byte aligned scratch buffers for the convolution drivers
// (portable translation units only). One per use and thread (thread_local
// at the call site), reused across calls, so a steady-state training step
// allocates nothing here.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <new>

namespace neuropil {
namespace conv_detail {

struct Buffer {
  void* ptr = nullptr;
  std::size_t bytes = 0;
  Buffer() = default;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  ~Buffer() { std::free(ptr); }
  template <typename T>
  T* get(std::int64_t count) {
    std::size_t need = sizeof(T) * static_cast<std::size_t>(std::max<std::int64_t>(count, 1));
    if (need > bytes) {
      std::free(ptr);
      ptr = nullptr;
      bytes = 0;
      need = (need + 4095) & ~std::size_t(4095);
      ptr = std::aligned_alloc(64, need);
      if (!ptr) throw std::bad_alloc();
      bytes = need;
    }
    return static_cast<T*>(ptr);
  }
};

// Touches the lines of a region a slice at a time (after each tile call), so
// that the next item's input and output arrive while this item computes:
// the direct layers lost 10-30% to those misses when they came in bursts at
// the item's start (pad copy) and end (output transpose). std::int64_t is the
// caller's (conv_detail) 64-bit index.
struct Prefetcher {
  const char* p = nullptr;
  std::int64_t lines = 0, done = 0, step = 0;
  void start(const float* region, std::int64_t floats, std::int64_t slices) {
    p = reinterpret_cast<const char*>(region);
    lines = (floats * std::int64_t(sizeof(float)) + 63) / 64;
    done = 0;
    step = (lines + std::max<std::int64_t>(1, slices) - 1) / std::max<std::int64_t>(1, slices);
  }
  void read_slice() {
    for (std::int64_t i = 0; i < step && done < lines; ++i, ++done) __builtin_prefetch(p + done * 64, 0, 3);
  }
  void write_slice() {
    for (std::int64_t i = 0; i < step && done < lines; ++i, ++done) __builtin_prefetch(p + done * 64, 1, 3);
  }
};

}  // namespace conv_detail
}  // namespace neuropil
