"""The CPU depthwise kernels (csrc/ops/cpu/depthwise_cpu.cpp, NCHW phase
planes; depthwise_nhwc_cpu.cpp, channels-last row ring) against torch, over
the geometry their index arithmetic depends on: strides 1-3 (phase planes),
dilation, padding beyond (K-1)*d (grad_input then leaves the correlation
form), channel counts around the 16-lane vectors and the 8/4-pixel blocks,
multiplier 2, 1D, empty batch, non-contiguous input, non-finite input in
grad_weight, and the path each case takes."""
import pytest
import torch

import convext
from convext import _C
from conftest import assert_close_to_torch


def path_of(op, a, b, size, stride, padding, dilation, groups):
    return _C.cpu_path(op, a, b, list(size), list(stride), list(padding), list(dilation), groups)


# (C, mult, H, W, KH, KW, stride, padding, dilation)
GEOMETRY = [
    (16, 1, 9, 11, 3, 3, 1, 1, 1),
    (20, 1, 7, 7, 3, 3, 2, 1, 1),
    (35, 1, 14, 13, 5, 5, 2, 2, 1),
    (3, 1, 10, 9, 3, 5, 3, 2, 1),
    (33, 1, 8, 12, 3, 3, 1, 2, 2),
    (17, 1, 6, 5, 3, 3, 1, 3, 1),  # padding > (K-1)*d: grad_input not a correlation
    (24, 1, 13, 29, 7, 7, 1, 3, 1),
    (8, 2, 9, 9, 3, 3, 2, 1, 1),  # multiplier 2
    (5, 1, 5, 4, 2, 2, 1, 0, 1),
    (12, 1, 5, 4, 7, 7, 1, 3, 1),  # no output column has all its taps inside the row
]


def _case(C, mult, H, W, KH, KW, stride, padding, dilation, dtype, layout, n=2):
    gen = torch.Generator().manual_seed(C * 100 + H * 10 + KH)
    x = torch.randn(n, C, H, W, generator=gen, dtype=torch.float64).to(dtype)
    w = torch.randn(C * mult, 1, KH, KW, generator=gen, dtype=torch.float64).to(dtype)
    b = torch.randn(C * mult, generator=gen, dtype=torch.float64).to(dtype)
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
        w = w.contiguous(memory_format=torch.channels_last)
    return x, w, b, dict(stride=stride, padding=padding, dilation=dilation, groups=C)


@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("geom", GEOMETRY, ids=lambda g: "x".join(map(str, g)))
def test_matches_torch(geom, dtype, layout):
    x, w, b, kw = _case(*geom, dtype, layout)
    assert_close_to_torch(2, x, w, b, **kw)
    C, mult = geom[0], geom[1]
    want = "depthwise_nhwc" if layout == "channels_last" and mult == 1 and C > 1 else "depthwise"
    st, pd, dl = (kw["stride"],) * 2, (kw["padding"],) * 2, (kw["dilation"],) * 2
    out = convext.conv2d(x, w, b, **kw)
    assert path_of("conv2d", x, w, (), st, pd, dl, C) == want
    assert path_of("conv2d_grad_input", out, w, x.shape, st, pd, dl, C) == want
    assert path_of("conv2d_grad_weight", out, x, w.shape, st, pd, dl, C) == want


@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
@pytest.mark.parametrize("geom", [GEOMETRY[1], GEOMETRY[2], GEOMETRY[5], GEOMETRY[7], GEOMETRY[9]],
                         ids=lambda g: "x".join(map(str, g)))
def test_gradcheck_float64(geom, layout):
    C, mult, H, W, KH, KW, stride, padding, dilation = geom
    x, w, b, kw = _case(min(C, 4), mult, min(H, 6), min(W, 7), KH, KW, stride, padding,
                        dilation, torch.float64, layout, n=1)
    x, w, b = (t.requires_grad_() for t in (x, w, b))
    assert torch.autograd.gradcheck(lambda x, w, b: convext.conv2d(x, w, b, **kw), (x, w, b))


@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
def test_empty_batch_and_non_contiguous(layout):
    x, w, b, kw = _case(20, 1, 9, 9, 3, 3, 2, 1, 1, torch.float32, layout, n=0)
    assert_close_to_torch(2, x, w, b, **kw)
    big, w, b, kw = _case(20, 1, 9, 18, 3, 3, 1, 1, 1, torch.float32, layout)
    assert_close_to_torch(2, big[..., ::2], w, b, **kw)  # every other column
    # strided conv of a column-strided view: the phase planes' copy runs at step 4
    assert_close_to_torch(2, big[..., ::2], w, b, **dict(kw, stride=2, padding=2))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("stride,padding", [(1, 3), (2, 0), (3, 1)])
def test_conv1d(dtype, stride, padding):
    gen = torch.Generator().manual_seed(stride)
    x = torch.randn(2, 24, 37, generator=gen).to(dtype)
    w = torch.randn(24, 1, 4, generator=gen).to(dtype)
    b = torch.randn(24, generator=gen).to(dtype)
    assert_close_to_torch(1, x, w, b, stride=stride, padding=padding, groups=24)


@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
@pytest.mark.parametrize("stride", [1, 2])
def test_grad_weight_with_infinite_input(layout, stride):
    """A plane's discarded grid columns must not turn an infinity that no
    output reads into NaN: convext gives torch's grad_weight, NaN for NaN."""
    x, w, b, kw = _case(16, 1, 8, 8, 3, 3, stride, 0, 1, torch.float32, layout)
    x = x.clone()
    x[0, 3, 2, 7] = float("inf")  # last column: read by some taps only (none at stride 2)
    x[1, 5, 4, 4] = float("-inf")
    go = torch.randn(convext.conv2d(x, w, **kw).shape)
    ours = torch.ops.convext.conv2d_grad_weight(go, x, list(w.shape), [stride] * 2, [0, 0],
                                                [1, 1], 16)
    ref = torch.ops.aten.convolution_backward(
        go.double(), x.double(), w.double(), None, [stride] * 2, [0, 0], [1, 1], False, [0, 0], 16,
        [False, True, False])[1]
    assert torch.equal(ours.isnan(), ref.isnan()), "NaN where torch has none (or the reverse)"
    assert torch.equal(ours.isinf(), ref.isinf())
    finite = ref.isfinite()
    torch.testing.assert_close(ours[finite].double(), ref[finite], rtol=1e-4, atol=1e-4)
