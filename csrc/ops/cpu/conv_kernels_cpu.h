#pragma once
// CPU kernel entry points (see ops/conv_ops.h for the contract). Each is
// defined in its own file and picks the GEMM path or the direct depthwise
// path, then dispatches on dtype.

#include <ATen/ATen.h>

#include "ops/conv_params.h"

#include <algorithm>

namespace convext {
namespace cpu {

// Grain for at::parallel_for over `tasks` tasks of a conv: problems too small
// to repay waking the thread pool (~1 MFLOP) run inline.
inline int64_t grain_size(int64_t tasks, const ConvShape& s) {
  return s.flops() < double(1 << 20) ? std::max<int64_t>(tasks, 1) : 1;
}

struct CpuKernels {
  static int device_guard(const at::Tensor&) { return 0; }
  static void forward(const at::Tensor& input, const at::Tensor& weight,
                      const at::Tensor* bias, at::Tensor& out, const ConvShape& s);
  static bool grad_input(const at::Tensor& grad_out, const at::Tensor& weight,
                         const at::Tensor* bias, at::Tensor& grad_in, const ConvShape& s);
  static void grad_weight(const at::Tensor& grad_out, const at::Tensor& input,
                          at::Tensor& grad_w, const ConvShape& s);
  static void grad_bias(const at::Tensor& grad_out, at::Tensor& grad_b);
};

}  // namespace cpu
}  // namespace convext
