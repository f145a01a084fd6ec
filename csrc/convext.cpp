// The Python module convext._C: importing it registers the ops (see
// ops/conv.cpp) and exposes a few facts about the build, the CPU path
// selector, and (underscored, for tests/test_ukernels.py) single microkernels.
#include <torch/extension.h>

#include "bench/peak_probe.h"
#include "ops/conv_params.h"
#include "ops/cpu/conv_path.h"
#include "ops/cpu/nhwc_grad_weight_taps.h"
#include "ops/cpu/scratch.h"
#include "ops/cpu/ukernels/microkernel.h"
#include "ops/cpu/ukernels/ukernel_calls.h"

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
        "Instruction set of the CPU GEMM microkernels in use (avx512+bf16+amx, avx512+bf16, "
        "avx512, avx2 or generic).");
  m.def("microkernel_gflops", &convext::cpu::microkernel_gflops, pybind11::arg("dtype"),
        pybind11::arg("seconds") = 0.05,
        "GFLOP/s one core's GEMM microkernel sustains on cache-resident data (the benchmark's "
        "CPU peak).", pybind11::call_guard<pybind11::gil_scoped_release>());
  m.def("scratch_stats",
        [](bool reset) { return convext::cpu::scratch_counter().peak_bytes(reset); },
        pybind11::arg("reset") = false,
        "Peak bytes of CPU kernel scratch memory alive at once since the last reset (per-thread "
        "buffers of every thread included); reset=True also starts a new peak.");
  m.def("cpu_path", &convext::cpu::path_for_op, pybind11::arg("op"), pybind11::arg("a"),
        pybind11::arg("b"), pybind11::arg("size"), pybind11::arg("stride"),
        pybind11::arg("padding"), pybind11::arg("dilation"), pybind11::arg("groups"),
        "The path the CPU kernel of op (conv1d, conv2d, conv{1,2}d_grad_input, "
        "conv{1,2}d_grad_weight) takes for the op's arguments (see csrc/ops/cpu/conv_path.h): "
        "depthwise_nhwc, depthwise, pointwise, staged, gather, or empty.");
  namespace cpu = convext::cpu;
  m.def("_gw_taps_applies",
        [](std::vector<int64_t> input_size, std::vector<int64_t> weight_size,
           std::vector<int64_t> stride, std::vector<int64_t> padding,
           std::vector<int64_t> dilation, int64_t groups) {
          const auto s = convext::shape_from_sizes(input_size, weight_size, stride, padding, dilation,
                                          groups, int64_t(weight_size.size()) - 2, "gw_taps");
          return cpu::nhwc_gw_taps_applies(s);
        },
        "Whether a channels-last bfloat16 grad_weight of these sizes runs the AMX "
        "tap-shifted kernel (nhwc_grad_weight_taps.h); false off AMX.");
  m.def("_ukernel_isas", &cpu::ukernel_isas);
  m.def("_ukernel_tile", &cpu::ukernel_tile);
  m.def("_ukernel_gemm", &cpu::ukernel_gemm, pybind11::arg("isa"), pybind11::arg("kc"), pybind11::arg("a"),
        pybind11::arg("b"), pybind11::arg("c"), pybind11::arg("ldc"), pybind11::arg("accumulate"),
        pybind11::arg("tiles") = false);
  m.def("_ukernel_transpose_words16", &cpu::ukernel_transpose_words16);
  m.def("_ukernel_transpose_halves32", &cpu::ukernel_transpose_halves32);
  m.def("_ukernel_interleave_halves", &cpu::ukernel_interleave_halves);
  m.def("_ukernel_taps_row", &cpu::ukernel_taps_row);
  m.def("_ukernel_taps_dot", &cpu::ukernel_taps_dot);
  m.def("_ukernel_vtaps_row", &cpu::ukernel_vtaps_row);
  m.def("_ukernel_vtaps_acc", &cpu::ukernel_vtaps_acc);
  m.attr("_ukernel_row_slack") = cpu::kRowSlack;
  m.attr("_ukernel_dot_lanes") = cpu::kDotLanes;
}
