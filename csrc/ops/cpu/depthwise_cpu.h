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

// The direct kernels hold zero-padded copies of planes or rows, so they take
// depthwise convs only while the padding is small next to the sizes (every
// real network's); the rest go to the GEMM path, whose scratch follows the
// tensors' sizes whatever the padding, stride or dilation.
inline bool depthwise_direct(const ConvShape& s) {
  return s.depthwise() && s.ph <= s.H + s.OH + s.KH && s.pw <= s.W + s.OW + s.KW;
}

template <typename S>
void depthwise_forward(const at::Tensor& input, const at::Tensor& weight,
                       const at::Tensor* bias, at::Tensor& out, const ConvShape& s);
template <typename S>
void depthwise_grad_input(const at::Tensor& grad_out, const at::Tensor& weight,
                          at::Tensor& grad_in, const ConvShape& s);
template <typename S>
void depthwise_grad_weight(const at::Tensor& grad_out, const at::Tensor& input,
                           at::Tensor& grad_w, const ConvShape& s);

// Channels-last variants (depthwise_nhwc_cpu.cpp), used when both tensors
// have unit channel stride and the channel multiplier is 1.
bool depthwise_nhwc_applies(const at::Tensor& a, const at::Tensor& b, const ConvShape& s);
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
