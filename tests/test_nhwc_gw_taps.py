"""The AMX grad_weight of stride-1 channels-last bfloat16 convs
(csrc/ops/cpu/nhwc_grad_weight_taps.cpp): each tap's tile reads grad_output,
transposed onto a grid with zero margins, from a shifted start, and the
pair-interleaved input in place. Values against float64 on the same bfloat16
values, where it applies (convext._C._gw_taps_applies, asserted per case) and
where it must not; odd grids (non-square, dilation, padding 0 and larger than
the kernel's reach, groups, 1D); strided tensors; an empty batch; and infs
and NaNs, which must give torch's NaN pattern (the kernel hands them to the
packed GEMM)."""
import pytest
import torch

import convext
from convext import _C

pytestmark = pytest.mark.skipif("amx" not in convext.cpu_isa(), reason="needs AMX-BF16")
ops = torch.ops.convext
CL = torch.channels_last

# (N, C, OC, size, kernel, padding, dilation, groups), stride 1
APPLIES = [
    (2, 64, 64, (12, 12), (3, 3), (1, 1), (1, 1), 1),
    (4, 32, 48, (9, 7), (3, 3), (1, 1), (1, 1), 1),  # OC not a multiple of 32
    (3, 32, 32, (10, 13), (3, 5), (2, 1), (1, 1), 1),  # non-square; more padding than reach
    (2, 64, 40, (20, 19), (3, 3), (2, 2), (2, 2), 1),  # dilation, 'same'
    (2, 32, 64, (20, 21), (3, 3), (0, 0), (1, 1), 1),  # valid: the margin runs the other way
    (2, 64, 64, (8, 8), (1, 1), (0, 0), (1, 1), 1),  # 1x1: no margin
    (2, 64, 64, (8, 9), (1, 1), (1, 1), (1, 1), 1),  # padding past the reach: OH > H + ph
    (2, 64, 64, (8, 9), (3, 3), (3, 0), (1, 1), 2),  # groups of 32
    (8, 96, 32, (5, 6), (2, 2), (1, 0), (1, 1), 1),  # even kernel, grid rows past H
]
# strided: (case, stride), each tap reading one phase plane of the input
STRIDED = [
    ((2, 64, 64, (24, 26), (3, 3), (1, 1), (1, 1), 1), (2, 2)),  # two planes a dim
    ((2, 64, 64, (16, 15), (1, 1), (0, 0), (1, 1), 1), (2, 2)),  # 1x1 downsampling: one plane
    ((2, 32, 32, (20, 21), (2, 2), (0, 0), (1, 1), 1), (3, 3)),  # stride > kernel
    ((2, 32, 64, (16, 12), (3, 3), (1, 1), (1, 1), 1), (2, 1)),  # non-square stride
    ((2, 32, 32, (20, 20), (3, 3), (2, 2), (2, 2), 1), (2, 2)),  # dilation 2: one plane
    ((2, 32, 32, (9, 1), (1, 1), (0, 2), (1, 1), 1), (1, 2)),  # width 1 < stride: padding taps
    ((3, 64, 64, (13, 14), (3, 3), (1, 1), (1, 1), 2), (2, 2)),  # groups, odd sizes
]
DOES_NOT_APPLY = [
    ((2, 64, 64, (12, 12), (3, 3), (1, 1), (1, 1), 1), (2, 2)),  # 6x6 output: margin 49 / 36
    ((2, 48, 64, (12, 12), (3, 3), (1, 1), (1, 1), 1), (1, 1)),  # 48 channels: not whole tiles
    ((2, 256, 256, (14, 14), (3, 3), (1, 1), (1, 1), 1), (1, 1)),  # 15% margin at 256 channels
    ((1, 32, 32, (7, 7), (7, 7), (3, 3), (1, 1), 1), (1, 1)),  # margin of 100 / 49
]


def make(N, C, OC, size, kernel, padding, dilation, groups, seed=0, stride=(1, 1)):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(N, C, *size, generator=g).bfloat16().contiguous(memory_format=CL)
    w_shape = [OC, C // groups, *kernel]
    out = torch.nn.functional.conv2d(x.float(), torch.zeros(w_shape), None, stride, padding,
                                     dilation, groups)
    go = torch.randn(out.shape, generator=g).bfloat16().contiguous(memory_format=CL)
    return x, go, w_shape


def reference(go, x, w_shape, stride, padding, dilation, groups):
    """float64 grad_weight of the same values, and the sum of the products'
    magnitudes (for the float32 accumulation's error bound)."""
    args = (list(stride), list(padding), list(dilation), False, [0, 0], groups,
            [False, True, False])
    w = torch.zeros(w_shape, dtype=torch.float64)
    ref = torch.ops.aten.convolution_backward(go.double(), x.double(), w, None, *args)[1]
    mag = torch.ops.aten.convolution_backward(go.double().abs(), x.double().abs(), w, None,
                                              *args)[1]
    return ref, mag


def assert_matches(gw, go, x, w_shape, stride, padding, dilation, groups):
    ref, mag = reference(go, x, w_shape, stride, padding, dilation, groups)
    # bfloat16 rounding of the result, plus float32 sums of up to K products
    bound = 2.0**-8 * ref.abs() + 2.0**-24 * go[0, 0].numel() * x[0, 0].numel() * mag + 1e-30
    err = (gw.double() - ref).abs()
    assert (err <= bound).all(), f"max err {err.max().item()} (bound {bound.max().item()})"


def check(case, stride):
    N, C, OC, size, kernel, padding, dilation, groups = case
    x, go, w_shape = make(*case, stride=stride)
    args = (list(stride), list(padding), list(dilation), groups)
    assert _C._gw_taps_applies(list(x.shape), w_shape, *args)
    assert _C.cpu_path("conv2d_grad_weight", go, x, w_shape, *args) == "nhwc"
    gw = ops.conv2d_grad_weight(go, x, w_shape, *args)
    assert_matches(gw, go, x, w_shape, stride, padding, dilation, groups)


@pytest.mark.parametrize("case", APPLIES, ids=str)
def test_values(case):
    check(case, (1, 1))


@pytest.mark.parametrize("case,stride", STRIDED, ids=str)
def test_strided(case, stride):
    check(case, stride)


@pytest.mark.parametrize("case,stride", DOES_NOT_APPLY, ids=str)
def test_does_not_apply(case, stride):
    N, C, OC, size, kernel, padding, dilation, groups = case
    w_shape = [OC, C // groups, *kernel]
    assert not _C._gw_taps_applies([N, C, *size], w_shape, list(stride), list(padding),
                                   list(dilation), groups)


def test_conv1d():
    """A 1D conv is a grid of one row: L x 1 pixels."""
    assert _C._gw_taps_applies([2, 64, 40], [32, 64, 3], [1], [1], [1], 1)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 40, 64, generator=g).bfloat16().transpose(1, 2)  # channels innermost
    go = torch.randn(2, 40, 32, generator=g).bfloat16().transpose(1, 2)
    assert _C.cpu_path("conv1d_grad_weight", go, x, [32, 64, 3], [1], [1], [1], 1) == "nhwc"
    gw = ops.conv1d_grad_weight(go, x, [32, 64, 3], [1], [1], [1], 1)
    ref, mag = reference(go.unsqueeze(2), x.unsqueeze(2), [32, 64, 1, 3], (1, 1), (0, 1), (1, 1),
                         1)
    bound = 2.0**-8 * ref.abs() + 2.0**-24 * 40 * mag
    assert ((gw.unsqueeze(2).double() - ref).abs() <= bound).all()


def test_strided_tensors():
    """A channel slice of a wider input (pixels 96 apart) and grad_output
    from every other column of a wider one: read through their strides."""
    g = torch.Generator().manual_seed(2)
    wide = torch.randn(2, 96, 10, 11, generator=g).bfloat16().contiguous(memory_format=CL)
    x = wide[:, 32:96]
    gwide = torch.randn(2, 64, 10, 22, generator=g).bfloat16().contiguous(memory_format=CL)
    go = gwide[:, :, :, ::2]
    assert x.stride(1) == 1 and go.stride(1) == 1 and not go.is_contiguous(memory_format=CL)
    w_shape = [64, 64, 3, 3]
    assert _C._gw_taps_applies(list(x.shape), w_shape, [1, 1], [1, 1], [1, 1], 1)
    gw = ops.conv2d_grad_weight(go, x, w_shape, [1, 1], [1, 1], [1, 1], 1)
    assert_matches(gw, go, x, w_shape, (1, 1), (1, 1), (1, 1), 1)


def test_empty_batch():
    x = torch.zeros(0, 64, 8, 8, dtype=torch.bfloat16).contiguous(memory_format=CL)
    go = torch.zeros(0, 64, 8, 8, dtype=torch.bfloat16).contiguous(memory_format=CL)
    gw = ops.conv2d_grad_weight(go, x, [64, 64, 3, 3], [1, 1], [1, 1], [1, 1], 1)
    assert gw.shape == (64, 64, 3, 3) and (gw == 0).all()


@pytest.mark.parametrize("stride", [(1, 1), (2, 2)], ids=["s1", "s2"])
@pytest.mark.parametrize("where", ["input_corner", "grad_output_edge"])
@pytest.mark.parametrize("value", [float("inf"), float("nan")], ids=["inf", "nan"])
def test_nonfinite(where, value, stride):
    """An input corner only some taps read (padding 0), or a grad_output
    pixel on the edge whose other taps read padding: torch's products give
    NaN (or inf) exactly where it has them; the grid's zeros must add none
    and drop none."""
    padding = (0, 0) if where == "input_corner" else (1, 1)
    case = (2, 64, 32, (20, 21), (3, 3), padding, (1, 1), 1)
    x, go, w_shape = make(*case, seed=3, stride=stride)
    args = (list(stride), list(padding), [1, 1], 1)
    assert _C._gw_taps_applies(list(x.shape), w_shape, *args)
    if where == "input_corner":
        x[0, 5, 0, 0] = value
    else:
        go[0, 7, 0, 3] = value
    gw = ops.conv2d_grad_weight(go, x, w_shape, *args)
    ref, _ = reference(go, x, w_shape, stride, padding, (1, 1), 1)
    assert torch.equal(gw.isnan(), ref.isnan()) and torch.equal(gw.isinf(), ref.isinf())
    assert ref.isnan().any() or ref.isinf().any()
    finite = ref.isfinite()
    err = (gw.double() - ref).abs()[finite]
    assert (err <= 2.0**-8 * ref.abs()[finite] + 1e-2).all()
