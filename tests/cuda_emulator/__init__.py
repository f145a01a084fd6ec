"""CPU emulator of the CUDA backend (test-only, never installed).

`load()` builds, once per checkout and on demand, an extension that compiles
the project's real csrc/ops/cuda sources as host C++ (with
-DCONVEXT_CUDA_EMULATOR, which swaps in device.h and runtime.h from this
folder) and exposes the convext ops on CPU tensors with the CUDA kernels
running on CPU fibers, checked for out-of-bounds global access, shared-memory
races and unwritten reads, and barriers not reached by every thread.
"""
import hashlib
import os
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SOURCES = ["emulator.cpp", "module.cpp", "faulty_kernels.cpp", "conv_forward_emulated.cpp",
           "conv_grad_input_emulated.cpp", "conv_grad_weight_emulated.cpp",
           "conv_grad_bias_emulated.cpp", "depthwise_emulated.cpp",
           "mma_emulation.cpp", "mma_kernels.cpp"]

_module = None


def build_dir():
    key = hashlib.sha1(ROOT.encode()).hexdigest()[:10]
    path = os.environ.get("CONVEXT_EMULATOR_BUILD_DIR") or os.path.join(
        tempfile.gettempdir(), f"convext-cuda-emulator-{key}")
    os.makedirs(path, exist_ok=True)
    return path


def load(verbose=False):
    global _module
    if _module is None:
        from torch.utils.cpp_extension import load as build
        _module = build(
            name="convext_cuda_emulator",
            sources=[os.path.join(HERE, s) for s in SOURCES]
            + [os.path.join(ROOT, "csrc", "ops", "conv_params.cpp")],
            extra_include_paths=[os.path.join(ROOT, "csrc"), os.path.join(ROOT, "tests")],
            extra_cflags=["-O2", "-std=c++20", "-DCONVEXT_CUDA_EMULATOR", "-Wno-unknown-pragmas"],
            build_directory=build_dir(), verbose=verbose)
    return _module
