#pragma once
// Op plumbing shared by the backends: argument checks, output allocation and
// memory format, the 1D -> 2D view, then a call into the backend's kernels.
//
// A backend provides a struct K with
//   static void forward(const Tensor& input, const Tensor& weight,
//                       const Tensor* bias, Tensor& out, const ConvShape&);
//   static bool grad_input(const Tensor& grad_out, const Tensor& weight,
//                          const Tensor* bias, Tensor& grad_in, const ConvShape&);
//   static void grad_weight(const Tensor& grad_out, const Tensor& input,
//                           Tensor& grad_w, const ConvShape&);
//   static void grad_bias(const Tensor& grad_out, Tensor& grad_b);
// All 4D tensors are (N, C, H, W) views with any strides; the kernels write
// every element of their (non-empty) output. grad_input adds `bias` (when not
// null) in its store, before rounding; a path that cannot returns false having
// written nothing, and ConvOps runs it again without the bias in the op math
// type (float32 for half types) and adds the bias there. The backend registers
// them with register_conv_ops<K>(m) in its TORCH_LIBRARY_IMPL block.

#include <ATen/ATen.h>
#include <ATen/OpMathType.h>
#include <torch/library.h>

#include "ops/conv_params.h"

namespace convext {

template <class K>
struct ConvOps {
  template <int64_t D>
  static at::Tensor conv(const at::Tensor& input, const at::Tensor& weight,
                         const std::optional<at::Tensor>& bias, at::IntArrayRef stride,
                         at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups) {
    const char* name = D == 1 ? "conv1d" : "conv2d";
    const ConvShape s = check_forward_args(input, weight, bias, stride, padding, dilation,
                                           groups, D, name);
    [[maybe_unused]] auto guard = K::device_guard(input);
    auto out = at::empty({s.N, s.out_channels(), s.OH, s.OW},
                         input.options().memory_format(output_memory_format(input, weight, D)));
    if (out.numel() > 0) {
      const bool has_bias = bias.has_value() && bias->defined();
      K::forward(as_2d(input, D), as_2d(weight, D), has_bias ? &*bias : nullptr, out, s);
    }
    return from_2d(out, D);
  }

  template <int64_t D>
  static at::Tensor grad_input(const at::Tensor& grad_output, const at::Tensor& weight,
                               at::IntArrayRef input_size, at::IntArrayRef stride,
                               at::IntArrayRef padding, at::IntArrayRef dilation,
                               int64_t groups, const std::optional<at::Tensor>& bias) {
    const char* name = D == 1 ? "conv1d_grad_input" : "conv2d_grad_input";
    const ConvShape s = shape_from_sizes(input_size, weight.sizes(), stride, padding,
                                         dilation, groups, D, name);
    check_grad_output(grad_output, s, D, name);
    check_same_type(grad_output, "grad_output", weight, "weight");
    const bool has_bias = bias.has_value() && bias->defined();
    if (has_bias) {
      TORCH_CHECK(bias->dim() == 1 && bias->size(0) == s.C, name, ": expected bias to be "
                  "1-dimensional with ", s.C, " elements, but got bias of size ", bias->sizes());
      check_same_type(grad_output, "grad_output", *bias, "bias");
    }
    [[maybe_unused]] auto guard = K::device_guard(grad_output);
    auto grad_in = at::empty({s.N, s.C, s.H, s.W},
                             grad_output.options().memory_format(
                                 output_memory_format(grad_output, grad_output, D)));
    if (grad_in.numel() == 0) return from_2d(grad_in, D);
    const at::Tensor go = as_2d(grad_output, D), w = as_2d(weight, D);
    if (!K::grad_input(go, w, has_bias ? &*bias : nullptr, grad_in, s)) {
      // The path has no bias in its store: a sum in the op math type, then
      // the bias, rounded once (adding it to a rounded result would round twice).
      const at::ScalarType acc_type = at::toOpMathType(grad_in.scalar_type());
      at::Tensor acc = acc_type == grad_in.scalar_type() ? grad_in
                                                         : at::empty_like(grad_in, acc_type);
      const bool ran = K::grad_input(go.to(acc_type), w.to(acc_type), nullptr, acc, s);
      TORCH_INTERNAL_ASSERT(ran);
      acc.add_(bias->to(acc_type).view({1, -1, 1, 1}));
      if (!acc.is_same(grad_in)) grad_in.copy_(acc);
    }
    return from_2d(grad_in, D);
  }

  template <int64_t D>
  static at::Tensor grad_weight(const at::Tensor& grad_output, const at::Tensor& input,
                                at::IntArrayRef weight_size, at::IntArrayRef stride,
                                at::IntArrayRef padding, at::IntArrayRef dilation,
                                int64_t groups) {
    const char* name = D == 1 ? "conv1d_grad_weight" : "conv2d_grad_weight";
    const ConvShape s = shape_from_sizes(input.sizes(), weight_size, stride, padding,
                                         dilation, groups, D, name);
    check_grad_output(grad_output, s, D, name);
    check_same_type(grad_output, "grad_output", input, "input");
    [[maybe_unused]] auto guard = K::device_guard(grad_output);
    auto grad_w = at::empty({s.OC, s.icg(), s.KH, s.KW},
                            grad_output.options().memory_format(
                                output_memory_format(input, grad_output, D)));
    if (grad_w.numel() > 0) K::grad_weight(as_2d(grad_output, D), as_2d(input, D), grad_w, s);
    return from_2d(grad_w, D);
  }

  static at::Tensor grad_bias(const at::Tensor& grad_output) {
    TORCH_CHECK(grad_output.dim() >= 2, "conv_grad_bias: expected grad_output with at least 2 "
                "dimensions, but got size ", grad_output.sizes());
    check_dtype(grad_output, "conv_grad_bias");
    [[maybe_unused]] auto guard = K::device_guard(grad_output);
    auto grad_b = at::empty({grad_output.size(1)}, grad_output.options());
    if (grad_b.numel() > 0) K::grad_bias(grad_output, grad_b);
    return grad_b;
  }
};

// Registers backend K's kernels for every convext op.
template <class K>
void register_conv_ops(torch::Library& m) {
  using Ops = ConvOps<K>;
  m.impl("conv1d", TORCH_FN((Ops::template conv<1>)));
  m.impl("conv2d", TORCH_FN((Ops::template conv<2>)));
  m.impl("conv1d_grad_input", TORCH_FN((Ops::template grad_input<1>)));
  m.impl("conv2d_grad_input", TORCH_FN((Ops::template grad_input<2>)));
  m.impl("conv1d_grad_weight", TORCH_FN((Ops::template grad_weight<1>)));
  m.impl("conv2d_grad_weight", TORCH_FN((Ops::template grad_weight<2>)));
  m.impl("conv_grad_bias", TORCH_FN(Ops::grad_bias));
}

}  // namespace convext
