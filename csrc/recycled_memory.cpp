#include "recycled_memory.h"

#include <mutex>
#include <new>
#include <utility>
#include <vector>

namespace vccv {

namespace {

// Small buffers are left to malloc, which recycles them well; the waiting buffers stay under
// kMaxWaitingBytes (a few pictures' worth at 4K), so memory stays bounded. Under AddressSanitizer
// nothing is recycled, so that a use after release is still caught.
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kRecycle = false;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kRecycle = false;
#else
constexpr bool kRecycle = true;
#endif
#else
constexpr bool kRecycle = true;
#endif
constexpr size_t kMinRecycledBytes = size_t{64} << 10, kMaxWaitingBytes = size_t{128} << 20;

// Sizes rounded up to eight classes per power of two (at most 12.5 % more), so that arrays whose
// size varies a little from picture to picture (the coefficients) reuse each other's buffers.
size_t size_class(size_t bytes) {
  if (bytes < kMinRecycledBytes) return bytes;
  size_t power = kMinRecycledBytes;
  while (power <= bytes / 2) power *= 2;
  const size_t step = power / 8;
  return (bytes + step - 1) / step * step;
}

struct Waiting {
  std::mutex mutex;
  std::vector<std::pair<size_t, void*>> buffers;  // (bytes, buffer), most recent last
  size_t bytes = 0;
};

Waiting& waiting() {
  static Waiting* w = new Waiting;  // never destroyed: buffers may come back during exit
  return *w;
}

}  // namespace

void* acquire_buffer(size_t bytes) {
  bytes = size_class(bytes);
  if (kRecycle && bytes >= kMinRecycledBytes) {
    Waiting& w = waiting();
    std::lock_guard<std::mutex> lock(w.mutex);
    for (size_t i = w.buffers.size(); i-- > 0;)
      if (w.buffers[i].first == bytes) {
        void* buffer = w.buffers[i].second;
        w.buffers.erase(w.buffers.begin() + static_cast<std::ptrdiff_t>(i));
        w.bytes -= bytes;
        return buffer;
      }
  }
  return ::operator new(bytes);
}

void release_buffer(void* buffer, size_t bytes) noexcept {
  if (buffer == nullptr) return;
  bytes = size_class(bytes);
  if (kRecycle && bytes >= kMinRecycledBytes) {
    Waiting& w = waiting();
    std::lock_guard<std::mutex> lock(w.mutex);
    if (w.bytes + bytes <= kMaxWaitingBytes) {
      try {
        w.buffers.emplace_back(bytes, buffer);
        w.bytes += bytes;
        return;
      } catch (const std::bad_alloc&) {  // no room to remember it: free it below
      }
    }
  }
  ::operator delete(buffer);
}

}  // namespace vccv
