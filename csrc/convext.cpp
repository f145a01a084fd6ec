// The Python module convext._C: importing it registers the ops (see
// ops/conv.cpp) and exposes a few facts about the build.
#include <torch/extension.h>

#include "ops/cpu/gemm/microkernel.h"
#include "ops/cpu/gemm/peak_probe.h"
#include "ops/cpu/scratch.h"

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
        "Instruction set of the CPU GEMM microkernels in use (avx512+bf16, avx512, avx2 or "
        "generic).");
  m.def("microkernel_gflops", &convext::cpu::microkernel_gflops, pybind11::arg("dtype"),
        pybind11::arg("seconds") = 0.05,
        "GFLOP/s one core's GEMM microkernel sustains on cache-resident data (the benchmark's "
        "CPU peak).", pybind11::call_guard<pybind11::gil_scoped_release>());
  m.def("scratch_stats",
        [](bool reset) { return convext::cpu::scratch_counter().peak_bytes(reset); },
        pybind11::arg("reset") = false,
        "Peak bytes of CPU kernel scratch memory alive at once since the last reset (per-thread "
        "buffers of every thread included); reset=True also starts a new peak.");
}
