#pragma once
// Host-side helpers for the CUDA kernels: tensor strides, the device's SM
// count (launch sizes depend on it) and scratch buffers.

#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAFunctions.h>

#include <array>
#include <atomic>

#include "ops/cuda/axis.cuh"

namespace convext {
namespace cuda {

inline Strides4 strides4(const at::Tensor& t) {
  return {t.stride(0), t.stride(1), t.stride(2), t.stride(3)};
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

}  // namespace cuda
}  // namespace convext
