// CPU kernels for every convext op.
#include <torch/library.h>

#include "ops/conv_ops.h"
#include "ops/cpu/conv_kernels_cpu.h"

TORCH_LIBRARY_IMPL(convext, CPU, m) {
  convext::register_conv_ops<convext::cpu::CpuKernels>(m);
}
