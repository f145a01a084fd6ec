"""Build convext._C from csrc/ against the installed PyTorch.

Install with ``pip install --no-build-isolation .`` so that the extension is
compiled against the torch you already have (an isolated build would try to
download a different one).

Switches (environment variables):
  FORCE_CUDA=1   build the CUDA kernels even if no GPU/CUDA torch is detected
  FORCE_CPU=1    build CPU kernels only, even if CUDA is available (wins)
  TORCH_CUDA_ARCH_LIST, MAX_JOBS   honoured as by torch.utils.cpp_extension
  CONVEXT_DEBUG=1  build with -O0 -g
"""
import glob
import os
import sys

from setuptools import find_packages, setup

try:
    import torch
    from torch.utils.cpp_extension import (CUDA_HOME, BuildExtension,
                                           CppExtension, CUDAExtension)
except ImportError:  # pragma: no cover - exercised by hand
    sys.exit(
        "convext: PyTorch must be installed before building convext.\n"
        "  1. pip install torch        (a CPU or CUDA build of your choice)\n"
        "  2. pip install --no-build-isolation .\n"
        "(--no-build-isolation makes the build use the torch you installed.)")

ROOT = os.path.dirname(os.path.abspath(__file__))
CSRC = os.path.join("csrc")


def env_flag(name):
    return os.environ.get(name, "0").strip().lower() in ("1", "true", "yes", "on")


def want_cuda():
    if env_flag("FORCE_CPU"):
        return False
    if env_flag("FORCE_CUDA"):
        return True
    return torch.version.cuda is not None and CUDA_HOME is not None


def openmp_flags():
    # Kernels use at::parallel_for; with OpenMP torch it inlines an OpenMP
    # region, so we must compile with -fopenmp to follow torch.set_num_threads.
    if "OpenMP" in torch.__config__.parallel_info() and sys.platform != "win32":
        return ["-fopenmp", "-DAT_PARALLEL_OPENMP=1"], ["-fopenmp"]
    return [], []


def sources(with_cuda):
    cpp = sorted(glob.glob(os.path.join(CSRC, "*.cpp")))
    cpp += sorted(glob.glob(os.path.join(CSRC, "ops", "*.cpp")))
    cpp += sorted(glob.glob(os.path.join(CSRC, "ops", "cpu", "**", "*.cpp"), recursive=True))
    cpp += sorted(glob.glob(os.path.join(CSRC, "ops", "autocast", "*.cpp")))
    cu = sorted(glob.glob(os.path.join(CSRC, "ops", "cuda", "**", "*.cu"), recursive=True))
    return cpp + (cu if with_cuda else [])


def make_extension():
    with_cuda = want_cuda()
    debug = env_flag("CONVEXT_DEBUG")
    omp_c, omp_l = openmp_flags()
    opt = ["-O0", "-g"] if debug else ["-O3"]
    cxx = opt + ["-std=c++20", "-fvisibility=hidden"] + omp_c
    define_macros = []
    kwargs = dict(extra_link_args=omp_l, include_dirs=[os.path.join(ROOT, CSRC)])
    if with_cuda:
        define_macros.append(("CONVEXT_WITH_CUDA", None))
        nvcc = opt + ["-std=c++20", "--expt-relaxed-constexpr", "-lineinfo"]
        return CUDAExtension(
            "convext._C", sources(True), define_macros=define_macros,
            extra_compile_args={"cxx": cxx, "nvcc": nvcc}, **kwargs)
    return CppExtension(
        "convext._C", sources(False), define_macros=define_macros,
        extra_compile_args={"cxx": cxx}, **kwargs)


setup(
    packages=find_packages(include=["convext", "convext.*"]),
    ext_modules=[make_extension()],
    cmdclass={"build_ext": BuildExtension.with_options(use_ninja=True)},
)
