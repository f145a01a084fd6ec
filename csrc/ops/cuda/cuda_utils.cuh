#pragma once
// Host-side helpers for the CUDA kernels: tensor strides, plus the runtime
// layer (SM count, scratch buffers, launches; see runtime.cuh).

#include <ATen/core/Tensor.h>

#include "ops/cuda/axis.cuh"
#include "ops/cuda/runtime.cuh"

namespace convext {
namespace cuda {

// Split reductions are sized to fill this many SMs (an H100's), never the
// device's own count: the split count fixes the order in which floats are
// added, so it must depend on the problem alone for results to be the same
// bit for bit on every GPU model. sm_count() may still size grid-stride
// loops and pick a SIMT tile, which leave the order of additions alone.
constexpr int64_t kReferenceSMs = 132;

inline Strides4 strides4(const at::Tensor& t) {
  return {t.stride(0), t.stride(1), t.stride(2), t.stride(3)};
}

}  // namespace cuda
}  // namespace convext
