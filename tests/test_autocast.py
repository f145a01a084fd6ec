"""Autocast: under torch.autocast convext runs in the autocast dtype, as
F.conv1d/F.conv2d do (CPU: torch.get_autocast_dtype("cpu"), bfloat16 by
default; CUDA: float16 by default). The casts are autograd-visible, so
gradients reach the float32 leaves in float32.

Results are compared with the same convext op called on tensors cast by
hand, which must match bit for bit (same casts, same kernels), and with
torch under autocast within the error bound of two half-precision results:
both accumulate in float32 and round once, so each is within
gamma(K) * sum|a*b| + u * |exact| of the exact value (see test_cuda.py).
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


def within_bound(a, b, x, w, bias, dims, kw, dtype):
    f = getattr(F, f"conv{dims}d")
    mag = f(x.double().abs(), w.detach().double().abs(), bias.detach().double().abs(), **kw)
    exact = f(x.double(), w.detach().double(), bias.detach().double(), **kw)
    n = w[0].numel() + 2
    gamma = n * 2.0 ** -24 / (1 - n * 2.0 ** -24)
    one = gamma * mag + UNIT[dtype] * exact.abs()
    return ((a.double() - b.double()).abs() <= 2 * one).all()


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
    assert within_bound(out, theirs, x, w, b, dims, kw, dtype)
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
