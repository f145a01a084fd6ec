#pragma once
// The channels-last (NHWC) GEMM path of the dense CPU kernels (see
// nhwc_igemm.h): the op files run it where select_path (conv_path.h) says
// kNhwc, instead of the NCHW-style packed GEMM.

#include <ATen/ATen.h>

#include "ops/conv_params.h"

namespace convext {
namespace cpu {

// Panel width of the indirect (NHWC) kernel for a dtype; 0 where there is
// none. select_path (conv_path.cpp) takes this path only where it is > 0.
int igemm_nr(at::ScalarType t);

// How many groups the forward fuses into one (1: none). On AMX a bfloat16
// group of half a tile's 32-channel chunk (16 channels, ResNeXt's later
// stages) runs two at a time, as one group of 32 channels in and 2*ocg out
// with a block-diagonal weight: each A tile is a run of 32 channels read in
// place, for twice the multiply-adds (the tiles are 3x faster than the
// grouped direct kernel). `input`: the forward's source, channels innermost.
int64_t nhwc_fused_groups(const ConvShape& s, const at::Tensor& input);

void nhwc_forward(const at::Tensor& input, const at::Tensor& weight, const at::Tensor* bias,
                  at::Tensor& out, const ConvShape& s);
// grad_input with a bias (null: none), added in the store.
void nhwc_grad_input(const at::Tensor& grad_out, const at::Tensor& weight,
                     const at::Tensor* bias, at::Tensor& grad_in, const ConvShape& s);
void nhwc_grad_weight(const at::Tensor& grad_out, const at::Tensor& input, at::Tensor& grad_w,
                      const ConvShape& s);

}  // namespace cpu
}  // namespace convext
