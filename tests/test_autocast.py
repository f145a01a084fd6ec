"""Autocast: under torch.autocast convext runs in the autocast dtype, as
F.conv1d/F.conv2d do (CPU: torch.get_autocast_dtype("cpu"), bfloat16 by
default; CUDA: float16 by default). The casts are autograd-visible, so
gradients reach the float32 leaves in float32.

Results are compared with the same convext op called on tensors cast by
hand, which must match bit for bit (same casts, same kernels), and with
the exact conv of the rounded inputs: convext accumulates in float32 and rounds
once, so it is within gamma(K) * sum|a*b| + u * |exact| of it (see
test_cuda.py); torch must agree within twice that wherever it is itself within
the bound (on CUDA, cuDNN's half-precision results are not everywhere).
"""
import pytest
import torch
import torch.nn.functional as F

import convext

UNIT = {torch.float16: 2.0 ** -11, torch.bfloat16: 2.0 ** -8}


def cuda_ready():
    return torch.cuda.is_available() and convext.with_cuda()


DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not cuda_ready(), reason="needs a GPU and convext built with CUDA kernels"))]


def inputs(dims, device, seed=0):
    gen = torch.Generator().manual_seed(seed)
    size = (9,) * dims
    x = torch.randn((2, 6, *size), generator=gen).to(device)
    w = torch.randn((8, 3, *(3,) * dims), generator=gen).to(device).requires_grad_()
    b = torch.randn((8,), generator=gen).to(device).requires_grad_()
    return x, w, b, dict(stride=1, padding=1, dilation=1, groups=2)


def check_bound(ours, theirs, x, w, bias, dims, kw, dtype):
    """ours within one rounding bound of the exact conv of the autocast-rounded
    inputs; torch too, at the elements where torch itself is within it (cuDNN's
    half-precision forward is not everywhere: benchmarks/gpu/accuracy.py)."""
    f = getattr(F, f"conv{dims}d")
    args = [t.detach().to(dtype).double() for t in (x, w, bias)]
    mag = f(*(t.abs() for t in args), **kw)
    exact = f(*args, **kw)
    n = w[0].numel() + 2
    gamma = n * 2.0 ** -24 / (1 - n * 2.0 ** -24)
    one = gamma * mag + UNIT[dtype] * exact.abs()
    assert ((ours.double() - exact).abs() <= one).all()
    torch_ok = (theirs.double() - exact).abs() <= one
    assert ((ours.double() - theirs.double()).abs() <= 2 * one)[torch_ok].all()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dims", [1, 2])
def test_autocast_runs_in_autocast_dtype(device, dims):
    x, w, b, kw = inputs(dims, device)
    dtype = torch.get_autocast_dtype(device)
    conv = getattr(convext, f"conv{dims}d")
    with torch.autocast(device):
        out = conv(x, w, b, **kw)
        theirs = getattr(F, f"conv{dims}d")(x, w, b, **kw)
    assert out.dtype == theirs.dtype == dtype
    by_hand = conv(x.to(dtype), w.detach().to(dtype), b.detach().to(dtype), **kw)
    assert torch.equal(out, by_hand)
    check_bound(out, theirs, x, w, b, dims, kw, dtype)
    out.float().sum().backward()
    assert w.grad.dtype == torch.float32 and b.grad.dtype == torch.float32
    assert w.grad.abs().sum() > 0


@pytest.mark.parametrize("device", DEVICES)
def test_autocast_dtype_argument(device):
    x, w, b, kw = inputs(2, device)
    other = torch.float16 if torch.get_autocast_dtype(device) == torch.bfloat16 else \
        torch.bfloat16
    with torch.autocast(device, dtype=other):
        out = convext.conv2d(x, w, b, **kw)
    assert out.dtype == other


@pytest.mark.parametrize("device", DEVICES)
def test_autocast_leaves_float64_and_disabled_regions_alone(device):
    x, w, b, kw = inputs(2, device)
    with torch.autocast(device):
        out64 = convext.conv2d(x.double(), w.detach().double(), b.detach().double(), **kw)
        with torch.autocast(device, enabled=False):
            out32 = convext.conv2d(x, w, b, **kw)
    assert out64.dtype == torch.float64
    assert out32.dtype == torch.float32


def test_autocast_module_keeps_float32_parameters():
    x, w, b, kw = inputs(2, "cpu")
    layer = convext.Conv2d(6, 8, 3, padding=1, groups=2)
    with torch.autocast("cpu"):
        out = layer(x)
    assert out.dtype == torch.get_autocast_dtype("cpu")
    assert layer.weight.dtype == torch.float32
