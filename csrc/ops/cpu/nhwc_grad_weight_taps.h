#pragma once
// The AMX grad_weight of channels-last bfloat16 convs: every tap's tile
// reads grad_out transposed from a shifted start and the pair-interleaved
// input (its phase plane, strided) in place (nhwc_grad_weight_taps.cpp).
// nhwc_grad_weight runs it where it applies.

#include <ATen/ATen.h>

#include "ops/conv_params.h"

namespace convext {
namespace cpu {

// Whether it applies: AMX, a group's input channels a multiple of the
// tile's 32 columns, not depthwise, and a grid margin that pays (the .cpp's
// measures).
bool nhwc_gw_taps_applies(const ConvShape& s);

// grad_w (any strides) from bfloat16 grad_out and input with channels
// innermost. false, with nothing written, when either holds an inf or NaN
// (the caller runs another kernel then).
bool nhwc_gw_taps(const at::Tensor& grad_out, const at::Tensor& input, at::Tensor& grad_w,
                  const ConvShape& s);

}  // namespace cpu
}  // namespace convext
