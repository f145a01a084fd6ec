// Python module of the CPU emulator (test-only, built by tests/cuda_emulator/
// __init__.py): the convext ops with the CUDA backend's kernels
// (convext::cuda::CudaKernels, emulated) on CPU tensors, through the same
// op plumbing as the real registration (ConvOps), plus the test controls.

#include <torch/extension.h>
#include <pybind11/stl.h>

#include "cuda_emulator/runtime.h"
#include "ops/conv_ops.h"
#include "ops/cuda/conv_kernels_cuda.h"

void bind_faulty_kernels(pybind11::module& m);  // faulty_kernels.cpp
void bind_mma_kernels(pybind11::module& m);     // mma_kernels.cpp

namespace {

using Ops = convext::ConvOps<convext::cuda::CudaKernels>;
using Ints = std::vector<int64_t>;

// conv{D}d, conv{D}d_grad_input, conv{D}d_grad_weight. Each op starts with
// no registered tensors: only its own are in bounds.
template <int64_t D>
void bind_dims(pybind11::module& m) {
  const std::string conv = "conv" + std::to_string(D) + "d";
  m.def(conv.c_str(), [](const at::Tensor& x, const at::Tensor& w,
                         const std::optional<at::Tensor>& b, Ints s, Ints p, Ints d, int64_t g) {
    cuda_emulator::clear_ranges();
    return Ops::conv<D>(x, w, b, s, p, d, g);
  });
  namespace py = pybind11;
  m.def((conv + "_grad_input").c_str(),
        [](const at::Tensor& go, const at::Tensor& w, Ints size, Ints s, Ints p, Ints d,
           int64_t g, const std::optional<at::Tensor>& b) {
          cuda_emulator::clear_ranges();
          return Ops::grad_input<D>(go, w, size, s, p, d, g, b);
        },
        py::arg("grad_output"), py::arg("weight"), py::arg("input_size"), py::arg("stride"),
        py::arg("padding"), py::arg("dilation"), py::arg("groups"), py::arg("bias") = py::none());
  m.def((conv + "_grad_weight").c_str(), [](const at::Tensor& go, const at::Tensor& x,
                                            Ints size, Ints s, Ints p, Ints d, int64_t g) {
    cuda_emulator::clear_ranges();
    return Ops::grad_weight<D>(go, x, size, s, p, d, g);
  });
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  bind_dims<1>(m);
  bind_dims<2>(m);
  m.def("conv_grad_bias", [](const at::Tensor& go) {
    cuda_emulator::clear_ranges();  // only this op's tensors are in bounds
    return Ops::grad_bias(go);
  });
  m.def("set_sm_count", &cuda_emulator::set_sm_count);
  m.def("sm_count", &cuda_emulator::sm_count);
  m.def("set_int32_index_limit", &cuda_emulator::set_int32_index_limit);
  m.def("launch_counts", &cuda_emulator::launch_counts);
  m.def("block_counts", &cuda_emulator::block_counts);
  bind_faulty_kernels(m);
  bind_mma_kernels(m);
}
