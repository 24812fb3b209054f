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

}  // namespace conv_detail
}  // namespace neuropil
