#pragma once
// The thin host-only layer between the launch code and the CUDA runtime:
// device guard, SM count, scratch buffers, the 32-bit index limit, the
// device pointers of tensors, and the one kernel launch wrapper. Every
// c10/cuda include lives here. The test-only CPU emulator (tests/cuda_emulator,
// -DCONVEXT_CUDA_EMULATOR) replaces this layer with the same names: it
// launches kernels on CPU fibers and registers each tensor pointer's valid
// range for bounds checks.

#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>

#ifdef CONVEXT_CUDA_EMULATOR
#include "cuda_emulator/runtime.h"
#else

#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <array>
#include <climits>
#include <atomic>
#include <utility>

namespace convext {
namespace cuda {

inline c10::cuda::OptionalCUDAGuard device_guard(const at::Tensor& t) {
  return c10::cuda::OptionalCUDAGuard(t.device());
}

// Multiprocessors of the current device, queried once per device. An
// attribute query is no stream operation, so it is safe during graph capture.
inline int sm_count() {
  static std::array<std::atomic<int>, C10_COMPILE_TIME_MAX_GPUS> cache{};
  const c10::DeviceIndex dev = c10::cuda::current_device();
  int n = cache[dev].load(std::memory_order_relaxed);
  if (n == 0) {
    C10_CUDA_CHECK(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev));
    cache[dev].store(n, std::memory_order_relaxed);
  }
  return n;
}

// Scratch of `n` elements of T from the caching allocator (stream-ordered and
// capturable, unlike cudaMalloc).
template <typename T>
at::Tensor scratch(const at::Tensor& like, int64_t n) {
  return at::empty({n}, like.options().dtype(c10::CppTypeToScalarType<T>::value));
}

// Element counts below this take 32-bit index math (launch_utils.cuh); the
// emulator can lower it to run the 64-bit variants on small tensors.
constexpr int64_t int32_index_limit() { return INT_MAX / 2; }

// Device pointers of tensors a kernel reads / writes.
template <typename T>
const T* read_ptr(const at::Tensor& t) {
  return t.const_data_ptr<T>();
}
template <typename T>
T* write_ptr(const at::Tensor& t) {
  return t.mutable_data_ptr<T>();
}

// kernel<<<grid, block, 0, current stream>>>(args...), then the launch check.
template <auto Kernel, typename... Args>
void launch(unsigned grid, unsigned block, Args&&... args) {
  Kernel<<<grid, block, 0, c10::cuda::getCurrentCUDAStream()>>>(std::forward<Args>(args)...);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

}  // namespace cuda
}  // namespace convext

#endif
