#pragma once
// Direct CPU kernels for depthwise-style convs (one input channel per group,
// any channel multiplier), where a GEMM would have a reduction of only KH*KW.
// Instantiated for float, double, BFloat16 and Half in depthwise_cpu.cpp.

#include <ATen/ATen.h>

#include "ops/conv_params.h"

// The element types the CPU kernel templates are instantiated for.
#define CONVEXT_CPU_TYPES(M) M(float) M(double) M(at::BFloat16) M(at::Half)

namespace convext {
namespace cpu {

template <typename S>
void depthwise_forward(const at::Tensor& input, const at::Tensor& weight,
                       const at::Tensor* bias, at::Tensor& out, const ConvShape& s);
template <typename S>
void depthwise_grad_input(const at::Tensor& grad_out, const at::Tensor& weight,
                          at::Tensor& grad_in, const ConvShape& s);
template <typename S>
void depthwise_grad_weight(const at::Tensor& grad_out, const at::Tensor& input,
                           at::Tensor& grad_w, const ConvShape& s);

// Channels-last variants (depthwise_nhwc_cpu.cpp), for multiplier 1 and
// unit channel stride on both tensors (conv_path.h picks which).
template <typename S>
void depthwise_nhwc_forward(const at::Tensor& input, const at::Tensor& weight,
                            const at::Tensor* bias, at::Tensor& out, const ConvShape& s);
template <typename S>
void depthwise_nhwc_grad_input(const at::Tensor& grad_out, const at::Tensor& weight,
                               at::Tensor& grad_in, const ConvShape& s);
template <typename S>
void depthwise_nhwc_grad_weight(const at::Tensor& grad_out, const at::Tensor& input,
                                at::Tensor& grad_w, const ConvShape& s);

}  // namespace cpu
}  // namespace convext
