#pragma once
// Direct CUDA kernels for depthwise-style convs (one input channel per group,
// any channel multiplier), where a GEMM would reduce over only KH*KW.
// Each dispatches on dtype itself.

#include <ATen/ATen.h>

#include "ops/conv_params.h"

namespace convext {
namespace cuda {

void depthwise_forward(const at::Tensor& input, const at::Tensor& weight,
                       const at::Tensor* bias, at::Tensor& out, const ConvShape& s);
void depthwise_grad_input(const at::Tensor& grad_out, const at::Tensor& weight,
                          at::Tensor& grad_in, const ConvShape& s);
void depthwise_grad_weight(const at::Tensor& grad_out, const at::Tensor& input,
                           at::Tensor& grad_w, const ConvShape& s);

}  // namespace cuda
}  // namespace convext
