// In a CPU-only build, CUDA tensors reaching a convext op get an error that
// says how to rebuild, instead of the dispatcher's "could not run" message.
#ifndef CONVEXT_WITH_CUDA
#include <torch/library.h>

namespace convext {
namespace {

void no_cuda(const c10::OperatorHandle& op, torch::jit::Stack*) {
  TORCH_CHECK(false, op.schema().name(), " got a CUDA tensor, but this convext build has no "
              "CUDA kernels. Rebuild it where nvcc and a CUDA build of torch are available: "
              "FORCE_CUDA=1 pip install --no-build-isolation --force-reinstall .");
}

}  // namespace

TORCH_LIBRARY_IMPL(convext, CUDA, m) {
  for (const char* name : {"conv1d", "conv2d", "conv1d_grad_input", "conv2d_grad_input",
                           "conv1d_grad_weight", "conv2d_grad_weight", "conv_grad_bias"}) {
    m.impl(name, torch::CppFunction::makeFromBoxedFunction<&no_cuda>());
  }
}

}  // namespace convext
#endif
