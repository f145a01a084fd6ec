"""The CPU path selector (csrc/ops/cpu/conv_path.h), through
convext._C.cpu_path: which kernel each op direction runs, for shapes on
either side of every rule (depthwise NCHW / channels-last, padding too large
for the direct kernels, few input channels, small groups, channels-last NHWC GEMM, 1x1 packed
straight from the input, staged stride-1, gathered), and that each path gives torch's values."""
import pytest
import torch
import torch.nn.functional as F

import convext
from convext import _C

from conftest import staged_grad_weight

BF16_KERNEL = "bf16" in convext.cpu_isa()


def path(op, a, b, size=(), stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1):
    return _C.cpu_path(op, a, b, list(size), list(stride), list(padding), list(dilation), groups)


def paths(x, w, stride=1, padding=0, dilation=1, groups=1):
    """(forward, grad_input, grad_weight) paths for a 2D conv of x and w."""
    args = dict(stride=(stride,) * 2, padding=(padding,) * 2, dilation=(dilation,) * 2,
                groups=groups)
    out = F.conv2d(x, w, stride=stride, padding=padding, dilation=dilation, groups=groups)
    return (path("conv2d", x, w, **args),
            path("conv2d_grad_input", out, w, x.shape, **args),
            path("conv2d_grad_weight", out, x, w.shape, **args))


def cl(t):
    return t.contiguous(memory_format=torch.channels_last)


CASES = [
    # (name, x, w, conv kwargs, expected (forward, grad_input, grad_weight))
    ("depthwise", torch.randn(2, 8, 9, 9), torch.randn(8, 1, 3, 3), dict(padding=1, groups=8),
     ("depthwise",) * 3),
    ("depthwise_mult2", cl(torch.randn(2, 8, 9, 9)), torch.randn(16, 1, 3, 3),
     dict(padding=1, groups=8), ("depthwise",) * 3),
    ("depthwise_nhwc", cl(torch.randn(2, 8, 9, 9)), cl(torch.randn(8, 1, 3, 3)),
     dict(stride=2, padding=1, groups=8), ("depthwise_nhwc",) * 3),
    # padding far beyond the sizes (one output position): the GEMM instead
    ("depthwise_huge_padding", torch.randn(1, 4, 3, 3), torch.randn(4, 1, 2, 2),
     dict(stride=50, padding=20, groups=4), ("gather",) * 3),
    ("pointwise", torch.randn(2, 16, 7, 7), torch.randn(8, 16, 1, 1), {},
     ("pointwise", "staged", "gather")),
    # channels-last with too few channels per group for half an igemm panel
    # (nr >= 12 on every instruction set): forward and grad_input keep the
    # NCHW-style GEMM, grad_weight (any channel count) takes the NHWC one
    ("pointwise_channels_last", cl(torch.randn(2, 8, 7, 7)), torch.randn(4, 8, 1, 1), {},
     ("staged", "staged", "nhwc")),
    ("nhwc", cl(torch.randn(2, 64, 9, 9)), torch.randn(64, 64, 3, 3), dict(padding=1),
     ("nhwc",) * 3),
    # at most 4 input channels, groups 1: the few-channel kernels, any layout
    ("small_c_channels_last", cl(torch.randn(2, 3, 15, 15)), torch.randn(64, 3, 3, 3),
     dict(stride=2, padding=1), ("small_c",) * 3),
    ("small_c", torch.randn(2, 4, 15, 15), torch.randn(8, 4, 3, 3), dict(padding=1),
     ("small_c",) * 3),
    # groups of 2 input channels are not small_c (groups 1 only): the direct
    # grouped conv, except grad_input at stride 2 (grouped takes stride 1 only)
    ("few_channels_grouped", cl(torch.randn(2, 4, 15, 15)), torch.randn(64, 2, 3, 3),
     dict(stride=2, padding=1, groups=2), ("grouped", "gather", "grouped")),
    ("nhwc_small_groups", cl(torch.randn(2, 16, 9, 9)), torch.randn(16, 4, 3, 3),
     dict(padding=1, groups=4), ("gather", "gather", "nhwc")),
    ("nhwc_strided", cl(torch.randn(2, 64, 9, 9)), torch.randn(64, 64, 3, 3),
     dict(stride=2, padding=1), ("nhwc", "nhwc", "nhwc")),
    ("pointwise_strided", torch.randn(2, 16, 7, 7), torch.randn(8, 16, 1, 1), dict(stride=2),
     ("gather",) * 3),
    # staging pays when the padded row is at most 1/8 wider than the output's
    ("dense3x3", torch.randn(2, 8, 20, 20), torch.randn(8, 8, 3, 3), dict(padding=1),
     ("staged", "staged", "gather")),
    ("dense3x3_narrow", torch.randn(2, 8, 12, 12), torch.randn(8, 8, 3, 3), dict(padding=1),
     ("gather",) * 3),
    ("strided", torch.randn(2, 8, 12, 12), torch.randn(8, 8, 3, 3), dict(stride=2, padding=1),
     ("gather",) * 3),
    # groups of 2 channels: the direct grouped conv (test_grouped_cpu.py) ...
    ("grouped", torch.randn(2, 8, 20, 20), torch.randn(8, 2, 3, 3), dict(padding=1, groups=4),
     ("grouped",) * 3),
    # ... unless its row buffers outgrow the output: here grad_weight's (one
    # lane block) fit, the forward's (every block, two threads) do not
    ("grouped_small", torch.randn(1, 8, 20, 20), torch.randn(8, 2, 3, 3),
     dict(padding=1, groups=4), ("staged", "staged", "grouped")),
]


@pytest.mark.parametrize("name,x,w,kwargs,expected", CASES, ids=[c[0] for c in CASES])
def test_paths(name, x, w, kwargs, expected):
    assert paths(x, w, **kwargs) == expected


@pytest.mark.parametrize("name,x,w,kwargs,expected", CASES, ids=[c[0] for c in CASES])
def test_each_path_matches_torch(name, x, w, kwargs, expected):
    x = x.double().requires_grad_()
    w = w.double().requires_grad_()
    ref = F.conv2d(x, w, **kwargs)
    got = convext.conv2d(x, w, **kwargs)
    torch.testing.assert_close(got, ref)
    g = torch.randn_like(ref)
    assert all(torch.allclose(a, b) for a, b in zip(torch.autograd.grad(got, (x, w), g),
                                                     torch.autograd.grad(ref, (x, w), g)))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.float16])
def test_pointwise_needs_the_stored_type_packed(dtype):
    """1x1 packs straight from the input only where the GEMM packs the tensor's
    own type: float, double, and bfloat16 with the AVX512-BF16 kernel; half
    types otherwise go through the float32 kernel, packed by staging."""
    x = torch.randn(2, 16, 7, 7, dtype=dtype)
    w = torch.randn(8, 16, 1, 1, dtype=dtype)
    packs_as_stored = dtype in (torch.float32, torch.float64) or (
        dtype == torch.bfloat16 and BF16_KERNEL)
    assert path("conv2d", x, w) == ("pointwise" if packs_as_stored else "staged")


def test_conv1d_and_empty():
    x, w = torch.randn(2, 4, 50), torch.randn(4, 1, 5)
    args = dict(stride=(1,), padding=(2,), dilation=(1,), groups=4)
    assert path("conv1d", x, w, **args) == "depthwise"
    out = F.conv1d(x, w, padding=2, groups=4)
    assert path("conv1d_grad_input", out, w, x.shape, **args) == "depthwise"
    assert path("conv1d_grad_weight", out, x, w.shape, **args) == "depthwise"
    assert path("conv1d", torch.randn(0, 4, 50), w, **args) == "empty"
    # the forward's own argument checks, with its message
    with pytest.raises(RuntimeError, match="Expected 3D"):
        path("conv1d", torch.randn(4, 50, 1, 1), w, **args)
    with pytest.raises(RuntimeError, match="unknown op"):
        path("conv3d", x, w, **args)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.float16])
def test_nhwc_needs_an_igemm_kernel(dtype):
    """The NHWC forward/grad_input read the tensor in place, so they need an
    indirect kernel for its type (float, double, bfloat16 with AVX512-BF16 or
    AMX); grad_weight packs, so it takes any dtype. grad_weight also needs
    both operands channels innermost."""
    x = cl(torch.randn(2, 64, 9, 9, dtype=dtype))
    w = torch.randn(64, 64, 3, 3, dtype=dtype)
    igemm = dtype in (torch.float32, torch.float64) or (dtype == torch.bfloat16 and BF16_KERNEL)
    fwd, gi, gw = paths(x, w, stride=2, padding=1)
    assert (fwd, gi, gw) == (("nhwc", "nhwc") if igemm else ("gather", "gather")) + ("nhwc",)
    out = cl(F.conv2d(x, w, stride=2, padding=1))
    args = dict(stride=(2, 2), padding=(1, 1), dilation=(1, 1), groups=1)
    # one operand channels innermost: the other is staged (nhwc_staged) where
    # that measured faster, else the NCHW GEMM
    mixed = "nhwc_staged" if staged_grad_weight(dtype, 64, 64, (3, 3), 25) else "gather"
    assert path("conv2d_grad_weight", out, x.contiguous(), w.shape, **args) == mixed
    assert path("conv2d_grad_weight", out.contiguous(), x, w.shape, **args) == mixed
