#pragma once
// The tensor-core kernels (forward, grad_input, grad_weight) read their
// activations as dense NHWC; this gives them that view of any layout, at
// the cost of one copy for NCHW (PyTorch's default), strided or unaligned.

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace convext {
namespace cuda {

// t (N, C, H, W) as a dense, 16-byte aligned NHWC tensor: t's own memory
// when it is laid out so (channels_last, or a 1D (N, L, C) buffer), else a
// copy, one read and one write of t.
inline at::Tensor nhwc_dense(const at::Tensor& t) {
  const at::Tensor v = t.permute({0, 2, 3, 1});
  if (v.is_contiguous() && reinterpret_cast<uintptr_t>(v.const_data_ptr()) % 16 == 0) return v;
  return v.clone(at::MemoryFormat::Contiguous);
}

}  // namespace cuda
}  // namespace convext
