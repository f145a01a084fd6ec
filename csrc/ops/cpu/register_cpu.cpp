// CPU kernels for every convext op.
#include <torch/library.h>

#include "ops/conv_ops.h"
#include "ops/cpu/conv_kernels_cpu.h"

namespace convext {
namespace {
using Ops = ConvOps<cpu::CpuKernels>;
}

TORCH_LIBRARY_IMPL(convext, CPU, m) {
  m.impl("conv1d", TORCH_FN(Ops::conv<1>));
  m.impl("conv2d", TORCH_FN(Ops::conv<2>));
  m.impl("conv1d_grad_input", TORCH_FN(Ops::grad_input<1>));
  m.impl("conv2d_grad_input", TORCH_FN(Ops::grad_input<2>));
  m.impl("conv1d_grad_weight", TORCH_FN(Ops::grad_weight<1>));
  m.impl("conv2d_grad_weight", TORCH_FN(Ops::grad_weight<2>));
  m.impl("conv_grad_bias", TORCH_FN(Ops::grad_bias));
}

}  // namespace convext
