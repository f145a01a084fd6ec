#pragma once
// Direct CPU kernels for grouped convs with few channels per group (ResNeXt's
// 32 groups of 4-16 channels), where a GEMM per group runs mostly empty 8x48
// tiles and pays packing and task overhead per group. Vectors run along the
// output channels: one vector covers several small groups (each lane reading
// its own group's input channels from an "expanded" copy of the input row),
// or a group spans whole vectors (each input channel broadcast). Threads take
// whole output rows, not groups. Instantiated for float, double, BFloat16 and
// Half in grouped_conv_cpu.cpp; conv_path.cpp decides when (grouped_applies).

#include <ATen/ATen.h>

#include "ops/conv_params.h"
#include "ops/cpu/conv_path.h"

namespace convext {
namespace cpu {

// Largest channels per group (input and output) the grouped path takes.
constexpr int64_t kGroupedMaxChannels = 32;

// Whether the grouped path runs this conv: groups of at most
// kGroupedMaxChannels (not depthwise), stride 1 for grad_input (the direct
// form of its transposed correlation), for a strided forward a source with
// channels innermost (converting NCHW rows costs as much as the conv there,
// every input row feeding fewer outputs), and its scratch, with the per-thread
// row buffers of 2 threads, no larger than the conv's output. (A fixed count:
// the path, and so the result's rounding, must not depend on the threads.)
bool grouped_applies(ConvDirection dir, const ConvShape& s, at::ScalarType dtype,
                     bool channels_innermost);

template <typename S>
void grouped_forward(const at::Tensor& input, const at::Tensor& weight, const at::Tensor* bias,
                     at::Tensor& out, const ConvShape& s);
template <typename S>
void grouped_grad_input(const at::Tensor& grad_out, const at::Tensor& weight,
                        at::Tensor& grad_in, const ConvShape& s);
template <typename S>
void grouped_grad_weight(const at::Tensor& grad_out, const at::Tensor& input,
                         at::Tensor& grad_w, const ConvShape& s);

}  // namespace cpu
}  // namespace convext
