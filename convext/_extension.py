"""Loads the compiled kernels (convext._C), which registers torch.ops.convext.*.

A broken or stale build is an error that shows the real cause and how to
rebuild; convext never falls back to torch's own convolution.
"""
import torch

try:
    from convext import _C  # noqa: F401  (importing registers the ops)
except ImportError as err:  # pragma: no cover - depends on the install
    raise ImportError(
        f"convext: the compiled extension convext._C failed to load:\n    {err}\n"
        f"It must be built against the torch in use (torch {torch.__version__}). "
        "Rebuild it from the convext checkout with:\n"
        "    pip install --no-build-isolation --force-reinstall --no-deps .\n"
        "(add FORCE_CUDA=1 for CUDA kernels)."
    ) from err

with_cuda = _C.with_cuda
cpu_isa = _C.cpu_isa
