// Operator schemas. Kernels are registered per backend (ops/cpu, ops/cuda);
// fake (meta) kernels and autograd formulas live in convext/_ops.py.
#include <torch/library.h>

TORCH_LIBRARY(convext, m) {
  // Forward: input (N, C, [H,] W), weight (OC, C/groups, [KH,] KW).
  m.def("conv1d(Tensor input, Tensor weight, Tensor? bias, int[] stride, "
        "int[] padding, int[] dilation, int groups) -> Tensor");
  m.def("conv2d(Tensor input, Tensor weight, Tensor? bias, int[] stride, "
        "int[] padding, int[] dilation, int groups) -> Tensor");
  // Gradient w.r.t. the input; needs only the input's size. With a bias (one
  // per input channel) it is a transposed conv: the bias is added before the
  // result is rounded to its dtype, once, as torch's conv_transpose does.
  m.def("conv1d_grad_input(Tensor grad_output, Tensor weight, SymInt[] input_size, "
        "int[] stride, int[] padding, int[] dilation, int groups, Tensor? bias=None) -> Tensor");
  m.def("conv2d_grad_input(Tensor grad_output, Tensor weight, SymInt[] input_size, "
        "int[] stride, int[] padding, int[] dilation, int groups, Tensor? bias=None) -> Tensor");
  // Gradient w.r.t. the weight; needs only the weight's size.
  m.def("conv1d_grad_weight(Tensor grad_output, Tensor input, SymInt[] weight_size, "
        "int[] stride, int[] padding, int[] dilation, int groups) -> Tensor");
  m.def("conv2d_grad_weight(Tensor grad_output, Tensor input, SymInt[] weight_size, "
        "int[] stride, int[] padding, int[] dilation, int groups) -> Tensor");
  // Gradient w.r.t. the bias: grad_output summed over every dim but 1.
  m.def("conv_grad_bias(Tensor grad_output) -> Tensor");
}
