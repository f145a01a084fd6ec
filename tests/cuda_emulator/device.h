#pragma once
// CUDA device built-ins for the CPU emulator (test-only; see emulator.cpp).
// csrc/ops/cuda/device.cuh includes this when built with
// -DCONVEXT_CUDA_EMULATOR. Every CUDA thread is a fiber; the built-ins below
// find the current fiber through emulator.cpp, which also does the checks:
//   gload/gstore   global access inside a tensor registered for this op
//   SmemRef        shared access: in bounds, written before read (in this
//                  block), no other thread's access since the last barrier
//   __syncthreads  reached by every thread of the block, at the same line
//   warp ops       all lanes of the mask meet (lockstep), else deadlock

#include <c10/macros/Macros.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <source_location>
#include <type_traits>
#include <vector>

namespace cuda_emulator {

struct uint3 {
  unsigned x = 1, y = 1, z = 1;
};

// Per shared element: the last writer and the readers since the last barrier,
// each with the barrier epoch of the access (block epochs only grow).
struct Shadow {
  uint64_t w_epoch = 0, r_epoch = 0;
  int32_t w_tid = -1, r_tid = -1;  // r_tid -2: several readers
};

// emulator.cpp
const uint3& thread_idx();
const uint3& block_idx();
const uint3& block_dim();
const uint3& grid_dim();
void check_global(uintptr_t addr, size_t bytes, bool write);
void shared_read(Shadow& s, const void* addr, const char* name);
void shared_write(Shadow& s, const void* addr, const char* name);
[[noreturn]] void shared_out_of_bounds(const char* name, int64_t i, int64_t n);
void sync_threads(std::source_location site);
// Waits for every lane of `mask` in the caller's warp, then returns each
// lane's `mine` in lanes[0..31] (lockstep exchange behind shuffles and votes).
void warp_exchange(unsigned mask, uint64_t mine, uint64_t* lanes, std::source_location site);

template <typename T>
T gload(const T* p, int64_t i) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p) + i * static_cast<int64_t>(sizeof(T));
  check_global(a, sizeof(T), false);
  return *reinterpret_cast<const T*>(a);
}

template <typename T>
void gstore(T* p, int64_t i, std::type_identity_t<T> v) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p) + i * static_cast<int64_t>(sizeof(T));
  check_global(a, sizeof(T), true);
  *reinterpret_cast<T*>(a) = v;
}

// A shared element: reads and writes go through the race checker.
template <typename T>
class SmemRef {
 public:
  SmemRef(T* p, Shadow* s, const char* name) : p_(p), s_(s), name_(name) {}
  operator T() const {
    shared_read(*s_, p_, name_);
    return *p_;
  }
  SmemRef& operator=(const T& v) {
    shared_write(*s_, p_, name_);
    *p_ = v;
    return *this;
  }
  SmemRef& operator=(const SmemRef& o) { return *this = static_cast<T>(o); }
  SmemRef& operator+=(const T& v) { return *this = static_cast<T>(*this) + v; }

 private:
  T* p_;
  Shadow* s_;
  const char* name_;
};

// A pointer into one shared array (bounds-checked against it).
template <typename T>
class SmemPtr {
 public:
  SmemPtr(T* base, Shadow* shadow, int64_t n, int64_t off, const char* name)
      : base_(base), shadow_(shadow), n_(n), off_(off), name_(name) {}
  SmemRef<T> operator[](int64_t i) const {
    i += off_;
    if (i < 0 || i >= n_) shared_out_of_bounds(name_, i, n_);
    return {base_ + i, shadow_ + i, name_};
  }
  SmemRef<T> operator*() const { return (*this)[0]; }
  SmemPtr operator+(int64_t d) const { return {base_, shadow_, n_, off_ + d, name_}; }
  const void* address() const { return base_ + off_; }  // alignment checks (mma.h)

 private:
  T* base_;
  Shadow* shadow_;
  int64_t n_, off_;
  const char* name_;
};

// A __shared__ T name[N]: one per CPU thread, and a CPU thread runs one block
// at a time, so it is private to the block. Stale shadows of earlier blocks
// have older epochs, which is how unwritten reads are found.
template <typename T, int64_t N>
class SharedArray {
 public:
  explicit SharedArray(const char* name) : data_(N), shadow_(N), name_(name) {}
  SmemPtr<T> ptr() { return {data_.data(), shadow_.data(), N, 0, name_}; }
  operator SmemPtr<T>() { return ptr(); }
  SmemRef<T> operator[](int64_t i) { return ptr()[i]; }
  SmemPtr<T> operator+(int64_t d) { return ptr() + d; }

 private:
  std::vector<T> data_;
  std::vector<Shadow> shadow_;
  const char* name_;
};

template <typename T>
T shuffle(unsigned mask, T v, int src_lane, std::source_location site) {
  static_assert(sizeof(T) <= 8 && std::is_trivially_copyable_v<T>, "shuffle type");
  uint64_t mine = 0, lanes[32];
  std::memcpy(&mine, &v, sizeof(T));
  warp_exchange(mask, mine, lanes, site);
  T r;
  std::memcpy(&r, &lanes[src_lane], sizeof(T));
  return r;
}

inline unsigned lane_id() {
  const uint3 &t = thread_idx(), &d = block_dim();
  return ((t.z * d.y + t.y) * d.x + t.x) % 32;
}

}  // namespace cuda_emulator

#define CUDA_EMULATOR_SHARED(T, name, n) \
  static thread_local ::cuda_emulator::SharedArray<T, (n)> name(#name)

#define threadIdx (::cuda_emulator::thread_idx())
#define blockIdx (::cuda_emulator::block_idx())
#define blockDim (::cuda_emulator::block_dim())
#define gridDim (::cuda_emulator::grid_dim())
#define warpSize 32
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static thread_local  // untracked: kernels use CONVEXT_SHARED

inline void __syncthreads(std::source_location site = std::source_location::current()) {
  ::cuda_emulator::sync_threads(site);
}
inline void __syncwarp(unsigned mask = 0xffffffffu,
                       std::source_location site = std::source_location::current()) {
  uint64_t lanes[32];
  ::cuda_emulator::warp_exchange(mask, 0, lanes, site);
}

#define CUDA_EMULATOR_SHUFFLE(name, src)                                                  \
  template <typename T>                                                                   \
  T name(unsigned mask, T v, int arg, int width = 32,                                     \
         std::source_location site = std::source_location::current()) {                   \
    const int lane = static_cast<int>(::cuda_emulator::lane_id()), base = lane / width * width; \
    const int from = (src);                                                               \
    return ::cuda_emulator::shuffle(mask, v, from, site);                                 \
  }
CUDA_EMULATOR_SHUFFLE(__shfl_sync, base + arg % width)
CUDA_EMULATOR_SHUFFLE(__shfl_down_sync, lane - base + arg < width ? lane + arg : lane)
CUDA_EMULATOR_SHUFFLE(__shfl_up_sync, lane - base >= arg ? lane - arg : lane)
CUDA_EMULATOR_SHUFFLE(__shfl_xor_sync, base + (((lane - base) ^ arg) % width))
#undef CUDA_EMULATOR_SHUFFLE

inline unsigned __ballot_sync(unsigned mask, int pred,
                              std::source_location site = std::source_location::current()) {
  uint64_t lanes[32];
  ::cuda_emulator::warp_exchange(mask, pred != 0, lanes, site);
  unsigned r = 0;
  for (int l = 0; l < 32; ++l)
    if ((mask >> l & 1) && lanes[l]) r |= 1u << l;
  return r;
}
inline int __any_sync(unsigned mask, int pred,
                      std::source_location site = std::source_location::current()) {
  return __ballot_sync(mask, pred, site) != 0;
}
inline int __all_sync(unsigned mask, int pred,
                      std::source_location site = std::source_location::current()) {
  return __ballot_sync(mask, pred, site) == mask;
}

template <typename T>
T __ldg(const T* p) {
  return ::cuda_emulator::gload(p, 0);
}

// Blocks run on several CPU threads, so global atomics are real atomics.
template <typename T>
T atomicAdd(T* p, T v) {
  ::cuda_emulator::check_global(reinterpret_cast<uintptr_t>(p), sizeof(T), true);
  return std::atomic_ref<T>(*p).fetch_add(v);
}
