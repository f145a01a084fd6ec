#pragma once
// Portability layer of the device code: the only thing kernels and
// __device__ helpers need besides ATen's scalar types. nvcc gets plain CUDA;
// the test-only CPU emulator (tests/cuda_emulator, built with
// -DCONVEXT_CUDA_EMULATOR) gets fibers, and checks every access made through
// these helpers:
//   gload(p, i) / gstore(p, i, v)   global memory p[i] (bounds-checked when emulated)
//   CONVEXT_SHARED(T, name, n)      __shared__ T name[n], private to the block
//   smem_ptr<T>                     a pointer into shared memory (race-checked when emulated)

#include <c10/macros/Macros.h>

#include <cstdint>

#ifdef CONVEXT_CUDA_EMULATOR
#include "cuda_emulator/device.h"

namespace convext {
namespace cuda {
using ::cuda_emulator::gload;
using ::cuda_emulator::gstore;
template <typename T>
using smem_ptr = ::cuda_emulator::SmemPtr<T>;
}  // namespace cuda
}  // namespace convext
#define CONVEXT_SHARED(T, name, n) CUDA_EMULATOR_SHARED(T, name, n)

#else

namespace convext {
namespace cuda {
template <typename T>
__device__ __forceinline__ T gload(const T* p, int64_t i) {
  return p[i];
}
template <typename T>
__device__ __forceinline__ void gstore(T* p, int64_t i, T v) {
  p[i] = v;
}
template <typename T>
using smem_ptr = T*;
}  // namespace cuda
}  // namespace convext
#define CONVEXT_SHARED(T, name, n) __shared__ T name[n]

#endif
