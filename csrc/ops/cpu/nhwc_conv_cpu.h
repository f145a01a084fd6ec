#pragma once
// The channels-last (NHWC) GEMM path of the dense CPU kernels (see
// nhwc_igemm.h): each op file asks *_applies first and, when it says yes,
// runs this path instead of the NCHW-style packed GEMM.

#include <ATen/ATen.h>

#include "ops/conv_params.h"

namespace convext {
namespace cpu {

// Path selection: the source operand has channels innermost (stride 1), the
// conv is not depthwise, and (forward/grad_input, whose N side is a group's
// channels) a group has channels enough to fill half a microkernel panel and
// a kernel for the dtype exists (float, double, bfloat16 on AVX512-BF16).
bool nhwc_forward_applies(const at::Tensor& input, const ConvShape& s);
bool nhwc_grad_input_applies(const at::Tensor& grad_out, const ConvShape& s);
bool nhwc_grad_weight_applies(const at::Tensor& grad_out, const at::Tensor& input,
                              const ConvShape& s);

void nhwc_forward(const at::Tensor& input, const at::Tensor& weight, const at::Tensor* bias,
                  at::Tensor& out, const ConvShape& s);
void nhwc_grad_input(const at::Tensor& grad_out, const at::Tensor& weight,
                     at::Tensor& grad_in, const ConvShape& s);
void nhwc_grad_weight(const at::Tensor& grad_out, const at::Tensor& input, at::Tensor& grad_w,
                      const ConvShape& s);

}  // namespace cpu
}  // namespace convext
