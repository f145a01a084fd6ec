#pragma once
// Host-side helpers for the CUDA kernels: tensor strides, plus the runtime
// layer (SM count, scratch buffers, launches; see runtime.cuh).

#include <ATen/core/Tensor.h>

#include "ops/cuda/axis.cuh"
#include "ops/cuda/runtime.cuh"

namespace convext {
namespace cuda {

inline Strides4 strides4(const at::Tensor& t) {
  return {t.stride(0), t.stride(1), t.stride(2), t.stride(3)};
}

}  // namespace cuda
}  // namespace convext
