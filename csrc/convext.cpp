// The Python module convext._C: importing it registers the ops (see
// ops/conv.cpp) and exposes a few facts about the build.
#include <torch/extension.h>

#include "ops/cpu/gemm/microkernel.h"

PYBIND11_MODULE(_C, m) {
  m.doc() = "convext kernels; the ops are torch.ops.convext.*";
  m.def("with_cuda", [] {
#ifdef CONVEXT_WITH_CUDA
    return true;
#else
    return false;
#endif
  }, "Whether this build has CUDA kernels.");
  m.def("cpu_isa", [] { return std::string(convext::cpu::ukernels().isa); },
        "Instruction set of the CPU GEMM microkernels in use (avx512, avx2 or generic).");
}
