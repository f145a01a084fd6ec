#pragma once
// The one place the CPU backend chooses how a conv runs, in the style of
// XNNPACK's select_microkernel_type: each op file asks select_path and only
// dispatches on the answer; convext._C.cpu_path reports the same answer to
// Python. Paths, in the order they are tried (the first that applies wins):
//   depthwise_nhwc  depthwise-style, multiplier 1, both tensors channels
//                   innermost (unit channel stride): vectorised over channels
//   depthwise       other depthwise-style convs whose padding is small next
//                   to the sizes: phase-split zero-padded planes
//   small_c_tiles   forward, bfloat16 on AMX, where small_c applies and input
//                   and output have channels innermost: im2col panels of
//                   whole kernel-row runs on the tiles (small_c_tiles_cpu.cpp)
//   small_c         groups == 1 and at most 4 input channels (image stems,
//                   waveform front ends), every direction and layout: short
//                   reductions with dedicated packing (small_c_conv_cpu.h;
//                   the bfloat16 backward on AMX tiles where it has them)
//   grouped         groups of at most 32 channels in and out, not depthwise
//                   (grad_input: stride 1), while its row buffers fit in the
//                   output's size: a direct conv vectorised over output
//                   channels, several small groups per vector
//                   (grouped_conv_cpu.h), where per-group GEMMs run mostly
//                   empty tiles
//   nhwc            not depthwise, the source tensor(s) channels innermost:
//                   forward/grad_input as an indirect GEMM reading pixels'
//                   channel runs in place, when an igemm kernel exists for
//                   the dtype and a group's channels fill half its panel;
//                   grad_weight (any dtype) packing pixel rows (nhwc_conv_cpu.h),
//                   or, bfloat16 on AMX where nhwc_gw_taps_applies, both
//                   operands read in place, tap by tap (nhwc_grad_weight_taps.h)
//   nhwc_staged     float or bfloat16, groups 1, 2D, tensors with channels
//                   apart (NCHW) staged channels innermost and run as nhwc,
//                   storing into the result as it is laid out. forward and
//                   grad_input (source input/grad_out): KH, KW > 1 and at
//                   least 512 pixels an image on the result's side, a few
//                   images staged at a time; gather/staged copy a 9x im2col
//                   into panels (bf16 l1.3x3 forward 2.4 -> 1.4 ms). Small
//                   images lose (too few pixels for the tiles), 1D kernels and
//                   float32 grad_input with one tap a phase (2x2 stride 2) ran
//                   faster on gather. grad_weight (both staged whole, the
//                   weight transposed after), 32+ channels in and out: bf16
//                   on AMX with at most 1024 output pixels an image, or taps
//                   > 1 and >= 256 input channels; float32 with taps > 1 and
//                   at most 256 pixels
//   pointwise       forward, 1x1, stride 1, no padding, input rows contiguous
//                   and packed as stored: B packed straight from the input
//   staged          forward and grad_input, stride 1, when staging pays
//                   (staging.h): padded planes, one contiguous run per row
//   gather          the implicit GEMM gathering its panels from the tensor
//                   (grad_input: per stride phase); grad_weight's GEMM
//                   where nhwc does not apply
// CUDA dispatches in the same order at its level: depthwise, then the
// tensor-core MMA kernel where it applies, then the SIMT GEMM.

#include <ATen/ATen.h>

#include <string>

#include "ops/conv_params.h"

namespace convext {
namespace cpu {

enum class CpuPath {
  kDepthwiseNhwc, kDepthwise, kSmallCTiles, kSmallC, kGrouped, kNhwc, kNhwcStaged, kPointwise,
  kStaged, kGather
};
enum class ConvDirection { kForward, kGradInput, kGradWeight };

// `a` and `b` are the 4D (N, C, H, W) views whose layouts matter:
//   forward: input, out;  grad_input: grad_out, grad_in;  grad_weight: grad_out, input.
CpuPath select_path(ConvDirection dir, const ConvShape& s, const at::Tensor& a,
                    const at::Tensor& b);

const char* path_name(CpuPath path);

// The path the CPU kernel of op `op` (conv1d, conv2d, conv{1,2}d_grad_input,
// conv{1,2}d_grad_weight) takes for these arguments, as the op receives them:
// (input, weight) for the forward, `size` unused; (grad_output, weight,
// input_size) and (grad_output, input, weight_size) for the backward ops.
// "empty" when the result has no elements (no kernel runs). Checks the
// arguments as the op does.
std::string path_for_op(const std::string& op, const at::Tensor& a, const at::Tensor& b,
                        at::IntArrayRef size, at::IntArrayRef stride, at::IntArrayRef padding,
                        at::IntArrayRef dilation, int64_t groups);

}  // namespace cpu
}  // namespace convext
