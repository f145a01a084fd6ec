#pragma once
// CUDA kernel entry points (see ops/conv_ops.h for the contract). Each is
// defined in its own file and picks the implicit-GEMM path or the direct
// depthwise path, then dispatches on dtype. Kernels run on the current
// stream of the tensors' device; scratch comes from the caching allocator.

#include <ATen/ATen.h>
#include "ops/conv_params.h"
#include "ops/cuda/runtime.cuh"

namespace convext {
namespace cuda {

struct CudaKernels {
  static auto device_guard(const at::Tensor& t) { return cuda::device_guard(t); }
  static void forward(const at::Tensor& input, const at::Tensor& weight,
                      const at::Tensor* bias, at::Tensor& out, const ConvShape& s);
  static bool grad_input(const at::Tensor& grad_out, const at::Tensor& weight,
                         const at::Tensor* bias, at::Tensor& grad_in, const ConvShape& s);
  static void grad_weight(const at::Tensor& grad_out, const at::Tensor& input,
                          at::Tensor& grad_w, const ConvShape& s);
  static void grad_bias(const at::Tensor& grad_out, at::Tensor& grad_b);
};

}  // namespace cuda
}  // namespace convext
