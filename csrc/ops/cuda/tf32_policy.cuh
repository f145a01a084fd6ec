#pragma once
// Whether float32 convs may run on TF32 tensor cores: torch's setting for
// convolutions, read the way ATen's cuDNN convolution reads it
// (`torch.backends.cudnn.conv.fp32_precision`, which in torch 2.13 also
// reflects the legacy `torch.backends.cudnn.allow_tf32`; default "tf32", as
// F.conv2d does). Host-only, read at each launch so a change takes effect on
// the next call. The one place the CUDA path choice asks; a float32 path
// that ignores it is a bug.
//
// Asked by the forward (conv_forward_cuda.cu), grad_input
// (conv_grad_input_cuda.cu, so also the transposed-conv forward) and
// grad_weight (conv_grad_weight_cuda.cu): TF32 tensor-core kernels when true,
// full-precision SIMT kernels when false.

#include <ATen/Context.h>

namespace convext {
namespace cuda {

inline bool conv_tf32_allowed() {
  return at::globalContext().allowTF32CuDNN(at::Float32Op::CONV);
}

}  // namespace cuda
}  // namespace convext
