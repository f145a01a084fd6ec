"""Build convext._C from csrc/ against the installed PyTorch.

Install with ``pip install --no-build-isolation .`` so that the extension is
compiled against the torch you already have (an isolated build would try to
download a different one). Needs a C++20 compiler (GCC 10+ or Clang 10+).
Each file prints a ``[convext k/n, t s]`` line as it starts compiling (k
done of n, t seconds in; shown by ``pip install -v``), so a long build does
not look hung.

Switches (environment variables):
  FORCE_CUDA=1   build the CUDA kernels even if no GPU/CUDA torch is detected
  FORCE_CPU=1    build CPU kernels only, even if CUDA is available (wins)
  TORCH_CUDA_ARCH_LIST, MAX_JOBS   honoured as by torch.utils.cpp_extension
  CONVEXT_DEBUG=1  build with -O0 -g
"""
import glob
import os
import subprocess
import sys

from setuptools import find_packages, setup


def torch_outside_build_env():
    """Where torch is installed for this interpreter, seen without the
    PYTHONPATH/site tweaks of pip's isolated build environment (python -I);
    None if it is not installed at all."""
    code = ("import importlib.util as u; s = u.find_spec('torch'); "
            "print(s.submodule_search_locations[0] if s else '')")
    try:
        out = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True,
                             text=True, timeout=60).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return out or None


try:
    import torch
    from torch.utils.cpp_extension import (CUDA_HOME, BuildExtension,
                                           CppExtension, CUDAExtension)
except ImportError as err:  # tests/test_install.py runs both branches
    hidden = torch_outside_build_env()
    if hidden:
        sys.exit(
            f"convext: torch is installed ({hidden}) but this build cannot import it "
            f"({err}):\n"
            "pip's build isolation builds in a fresh environment without it. "
            "Build against your torch with:\n"
            "    pip install --no-build-isolation .")
    sys.exit(
        "convext: PyTorch must be installed before building convext.\n"
        "  1. pip install torch numpy   (a CPU or CUDA build of your choice; CPU-only:\n"
        "                                add --index-url https://download.pytorch.org/whl/cpu)\n"
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
    cpp += sorted(glob.glob(os.path.join(CSRC, "bench", "*.cpp")))
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


class BuildWithProgress(BuildExtension):
    """torch's BuildExtension (ninja, one line per compiled file) with a
    progress prefix on each line and a first line saying what is coming."""

    def build_extensions(self):
        os.environ.setdefault("NINJA_STATUS", "[convext %f/%t, %es] ")
        count = sum(len(ext.sources) for ext in self.extensions)
        jobs = os.environ.get("MAX_JOBS", "ninja's default")
        print(f"convext: compiling {count} C++/CUDA files with ninja (MAX_JOBS: {jobs}); "
              "a CPU build takes a few minutes on 2 cores. Each file prints a "
              "[convext <files done>/<files>, <seconds>] line as it starts.", flush=True)
        super().build_extensions()


setup(
    packages=find_packages(include=["convext", "convext.*"]),
    ext_modules=[make_extension()],
    cmdclass={"build_ext": BuildWithProgress.with_options(use_ninja=True)},
)
