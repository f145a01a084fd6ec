#pragma once
// Scratch memory of the CPU kernels, and its accounting. Every workspace a
// kernel allocates (packed panels, staged planes, per-thread tiles, partial
// sums, depthwise row buffers) comes from Scratch<T> or ScratchVector<T>, so
// the bytes alive at once are counted, per-thread buffers included (they
// scale with the thread count). The peak since the last reset is what
// convext._C.scratch_stats() reports: the benchmark's scratch/out column and
// tests/test_scratch.py, which holds each call's workspace to its output's
// size. Index tables (a few int64 per tap or row) are not counted.

#include <ATen/ATen.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

namespace convext {
namespace cpu {

struct ScratchCounter {
  std::atomic<int64_t> live{0}, peak{0};

  void add(int64_t bytes) {
    const int64_t now = live.fetch_add(bytes, std::memory_order_relaxed) + bytes;
    int64_t seen = peak.load(std::memory_order_relaxed);
    while (now > seen && !peak.compare_exchange_weak(seen, now, std::memory_order_relaxed)) {
    }
  }
  void remove(int64_t bytes) { live.fetch_sub(bytes, std::memory_order_relaxed); }
  // The peak since the last reset; a reset starts the next peak from what is
  // alive now (nothing, between op calls).
  int64_t peak_bytes(bool reset) {
    return reset ? peak.exchange(live.load(std::memory_order_relaxed)) : peak.load();
  }
};

inline ScratchCounter& scratch_counter() {
  static ScratchCounter counter;
  return counter;
}

// Counts `bytes` for as long as it lives.
class ScratchBytes {
 public:
  explicit ScratchBytes(int64_t bytes) : bytes_(bytes) { scratch_counter().add(bytes_); }
  ScratchBytes(const ScratchBytes&) = delete;
  ScratchBytes& operator=(const ScratchBytes&) = delete;
  ~ScratchBytes() { scratch_counter().remove(bytes_); }

 private:
  int64_t bytes_;
};

// 64-byte aligned scratch memory from torch's CPU allocator.
template <typename T>
struct Scratch {
  ScratchBytes counted;
  at::Tensor t;
  T* ptr = nullptr;
  explicit Scratch(int64_t n) : counted(std::max<int64_t>(n, 1) * int64_t(sizeof(T))) {
    static_assert(sizeof(T) == 8 || sizeof(T) == 4 || sizeof(T) == 2);
    const auto dtype = sizeof(T) == 8 ? at::kDouble : sizeof(T) == 4 ? at::kFloat : at::kShort;
    t = at::empty({std::max<int64_t>(n, 1)}, at::TensorOptions().dtype(dtype));
    ptr = reinterpret_cast<T*>(t.data_ptr());
  }
};

// std::allocator that counts what it holds.
template <typename T>
struct ScratchAllocator : std::allocator<T> {
  using value_type = T;
  template <typename U>
  struct rebind {
    using other = ScratchAllocator<U>;
  };
  ScratchAllocator() = default;
  template <typename U>
  ScratchAllocator(const ScratchAllocator<U>&) {}
  T* allocate(size_t n) {
    scratch_counter().add(int64_t(n * sizeof(T)));
    return std::allocator<T>::allocate(n);
  }
  void deallocate(T* p, size_t n) {
    scratch_counter().remove(int64_t(n * sizeof(T)));
    std::allocator<T>::deallocate(p, n);
  }
};
template <typename T, typename U>
bool operator==(const ScratchAllocator<T>&, const ScratchAllocator<U>&) { return true; }
template <typename T, typename U>
bool operator!=(const ScratchAllocator<T>&, const ScratchAllocator<U>&) { return false; }

// A std::vector of workspace data, counted.
template <typename T>
using ScratchVector = std::vector<T, ScratchAllocator<T>>;

}  // namespace cpu
}  // namespace convext
