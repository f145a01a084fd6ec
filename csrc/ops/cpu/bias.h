#pragma once
// A conv's bias in the accumulator type, one value per channel: the kernels
// add it in their float store, so a half-type result is rounded once.

#include <ATen/ATen.h>

#include "ops/cpu/scratch.h"

namespace convext {
namespace cpu {

// n values: the bias's, or zeros when there is none (bias null).
template <typename S, typename T>
ScratchVector<T> bias_values(const at::Tensor* bias, int64_t n) {
  ScratchVector<T> b(n, T(0));
  if (bias) {
    const at::Tensor bc = bias->contiguous();
    const S* bp = bc.const_data_ptr<S>();
    for (int64_t i = 0; i < n; ++i) b[i] = static_cast<T>(bp[i]);
  }
  return b;
}

}  // namespace cpu
}  // namespace convext
