#pragma once
// Shape and argument handling shared by every backend: one place that checks
// arguments (with ATen's wording) and describes a 2D convolution. 1D ops are
// run as 2D ones over an (N, C, 1, L) view.

#include <ATen/ATen.h>

#include <optional>

namespace convext {

// A batched 2D convolution: input (N, C, H, W), weight (OC, C/G, KH, KW),
// output (N, OC, OH, OW).
struct ConvShape {
  int64_t N = 0, C = 0, H = 0, W = 0;
  int64_t OC = 0, KH = 0, KW = 0, G = 1;
  int64_t sh = 1, sw = 1, ph = 0, pw = 0, dh = 1, dw = 1;
  int64_t OH = 0, OW = 0;

  int64_t icg() const { return C / G; }   // input channels per group
  int64_t ocg() const { return OC / G; }  // output channels per group
  int64_t taps() const { return KH * KW; }
  // torch's result for an input with zero channels is (N, 0, OH, OW), not
  // (N, OC, OH, OW) filled with the bias.
  int64_t out_channels() const { return C == 0 ? 0 : OC; }
  // A depthwise-style conv (one input channel per group) has no reduction
  // over channels and gets direct kernels instead of the GEMM path.
  bool depthwise() const { return icg() == 1 && G > 1; }
  // Multiply-adds x 2 of the forward (each backward op costs the same).
  double flops() const {
    return 2.0 * N * OC * OH * OW * static_cast<double>(icg()) * taps();
  }
};

// Checks stride/padding/dilation/groups and the tensors of a forward call and
// returns the shape, with ATen's limits and messages: padding at most 2^62 - 1,
// extents computed exactly (no int64 overflow: every index a kernel forms
// fits), an empty input only with zero batch or zero channels, no zero-size
// kernel. A stride of a dim with one output position, and the dilation of a
// one-tap dim, come back as 1. `dims` is 1 or 2; for 1D, `input`/`weight` are the
// caller's 3D tensors and the returned shape has H = KH = 1.
ConvShape check_forward_args(
    const at::Tensor& input, const at::Tensor& weight,
    const std::optional<at::Tensor>& bias, at::IntArrayRef stride,
    at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups,
    int64_t dims, const char* op_name);

// Shape for the backward ops from the sizes the caller recorded.
ConvShape shape_from_sizes(
    at::IntArrayRef input_size, at::IntArrayRef weight_size,
    at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation,
    int64_t groups, int64_t dims, const char* op_name);

// Backward ops: grad_output must have the shape the forward would produce,
// and the other tensor must match it in dtype and device.
void check_grad_output(const at::Tensor& grad_output, const ConvShape& s,
                       int64_t dims, const char* op_name);
void check_same_type(const at::Tensor& a, const char* a_name,
                     const at::Tensor& b, const char* b_name);

// Supported element types: float, double, bfloat16, half.
void check_dtype(const at::Tensor& t, const char* op_name);

// torch's rule: a 2D result is channels_last when the input or the weight
// suggests channels_last; 1D results are contiguous.
at::MemoryFormat output_memory_format(const at::Tensor& a, const at::Tensor& b,
                                      int64_t dims);

// (N, C, L) <-> (N, C, 1, L) views used to run 1D convs on the 2D kernels.
at::Tensor as_2d(const at::Tensor& t, int64_t dims);
at::Tensor from_2d(const at::Tensor& t, int64_t dims);

}  // namespace convext
