// CUDA kernels for every convext op.
#include <torch/library.h>

#include "ops/conv_ops.h"
#include "ops/cuda/conv_kernels_cuda.h"

TORCH_LIBRARY_IMPL(convext, CUDA, m) {
  convext::register_conv_ops<convext::cuda::CudaKernels>(m);
}
