"""The dense grad_weight GEMMs (csrc/ops/cpu/conv_grad_weight_cpu.cpp, NCHW:
dot-product tiles over rows copied along positions where the CPU has the
kernels, dot_gemm.h; nhwc_conv_cpu.cpp, channels-last) against a float64
reference, on shapes that reach every edge of their plans
(split_reduction.h): reductions split or not, blocks ending mid-row and
mid-lane-vector, tiles and panels cut short, strides, dilation, padding,
groups, empty batches and non-contiguous tensors. Results must not depend
on the thread count. (Every ISA row runs test_functional in test_cpu_isa.)"""
import pytest
import torch

import convext
from convext import _C
from conftest import assert_within, staged_grad_weight

DTYPES = [torch.float32, torch.bfloat16, torch.float16, torch.float64]

# (N, C, OC, size, kernel, stride, padding, dilation, groups)
SHAPES_2D = [
    (2, 16, 12, (23, 29), (3, 3), 1, 1, 1, 1),     # one block, cut tiles
    (3, 13, 7, (9, 11), (3, 3), 2, 1, 1, 1),       # odd M and N, stride
    (4, 24, 40, (33, 35), (1, 1), 1, 0, 1, 1),     # R = 4620: split reduction
    (1, 9, 130, (45, 47), (2, 2), 1, 2, 2, 1),     # M over one 128 tile, dilation
    (2, 80, 96, (10, 10), (3, 3), 1, 1, 1, 2),     # groups too wide for the grouped path
    (1, 150, 6, (12, 13), (1, 3), (1, 2), (0, 1), 1, 1),  # N over one tile
    (2, 5, 4, (5, 5), (5, 5), 1, 0, 1, 1),         # one position per image (C > 4: not small_c)
    (2, 64, 50, (9, 7), (1, 1), 1, 0, 1, 1),       # N = 64: the wide strided-A tile, M tail 2
]


def reference(go, x, wshape, stride, padding, dilation, groups, dims):
    z = [0] * dims
    return torch.ops.aten.convolution_backward(
        go.double(), x.double(), torch.zeros(wshape, dtype=torch.float64), None, stride,
        padding, dilation, False, z, groups, [False, True, False])[1]


def run(dims, N, C, OC, size, kernel, stride, padding, dilation, groups, dtype, layout,
        noncontig=False):
    pair = lambda v: list(v) if isinstance(v, tuple) else [v] * dims
    stride, padding, dilation = pair(stride), pair(padding), pair(dilation)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(N, C * (2 if noncontig else 1), *size, generator=gen, dtype=torch.float64)
    x = x[:, ::2] if noncontig else x
    wshape = [OC, C // groups, *kernel]
    fn = torch.nn.functional.conv2d if dims == 2 else torch.nn.functional.conv1d
    out_shape = fn(x, torch.zeros(wshape, dtype=torch.float64), None, stride, padding, dilation,
                   groups).shape
    go = torch.randn(out_shape, generator=gen, dtype=torch.float64)
    x, go = x.to(dtype), go.to(dtype)
    if layout == "channels_last":
        x, go = (t.contiguous(memory_format=torch.channels_last) for t in (x, go))
    op = torch.ops.convext.conv2d_grad_weight if dims == 2 else torch.ops.convext.conv1d_grad_weight
    got = op(go, x, wshape, stride, padding, dilation, groups)
    ref = reference(go, x, wshape, stride, padding, dilation, groups, dims)
    abs_ref = reference(go.abs(), x.abs(), wshape, stride, padding, dilation, groups, dims)
    reduction = N * go[0, 0].numel() if N else 1
    assert_within(got, ref, abs_ref, reduction, dtype, "grad_weight")
    path = _C.cpu_path(f"conv{dims}d_grad_weight", go, x, wshape, stride, padding, dilation,
                       groups)
    return got, path


@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", SHAPES_2D, ids=str)
def test_grad_weight_2d(shape, dtype, layout):
    got, path = run(2, *shape, dtype, layout)
    N, C, OC, size, kernel, stride, padding, dilation, groups = shape
    expected = "nhwc" if layout == "channels_last" and C > 1 and OC > 1 else "gather"
    if expected == "gather":
        x = torch.empty(max(N, 1), C, *size)
        w = torch.empty(OC, C // groups, *kernel)
        out = torch.nn.functional.conv2d(x, w, stride=stride, padding=padding, dilation=dilation,
                                         groups=groups)
        if staged_grad_weight(dtype, C, OC, kernel, out.shape[2] * out.shape[3], groups):
            expected = "nhwc_staged"
    assert path == expected


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", [
    (1, 16, 32, (999,), (3,), 1, 64, 64, 1),   # wavenet-style dilation
    (2, 12, 20, (3001,), (3,), 2, 1, 1, 1),    # long rows, stride
    (1, 6, 5, (37,), (4,), 1, 3, 1, 1),
], ids=str)
def test_grad_weight_1d(shape, dtype):
    _, path = run(1, *shape, dtype, "nchw")
    assert path == "gather"


@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_empty_batch_and_noncontiguous(dtype, layout):
    got, _ = run(2, 0, 8, 8, (7, 7), (3, 3), 1, 1, 1, 1, dtype, layout)
    assert torch.equal(got, torch.zeros_like(got))
    run(2, 2, 12, 16, (15, 17), (3, 3), 1, 1, 1, 1, dtype, layout, noncontig=True)


@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_independent_of_thread_count(dtype, layout):
    """A split reduction (R = 2*64*64) is summed in the same order whatever
    the thread count."""
    before = torch.get_num_threads()
    results = []
    try:
        for n in (1, 2, 3):
            torch.set_num_threads(n)
            results.append(run(2, 2, 32, 48, (64, 64), (3, 3), 1, 1, 1, 1, dtype, layout)[0])
    finally:
        torch.set_num_threads(before)
    assert all(torch.equal(results[0], r) for r in results[1:])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_channels_last_grad_output_with_gaps(dtype):
    """A channels-last grad_output whose pixels are not evenly spaced (a
    slice along H) cannot be read in place by the strided-A kernel: it is
    packed, and the values still match."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 16, 9, 8, generator=gen, dtype=torch.float64)
    go_full = torch.randn(2, 20, 18, 8, generator=gen, dtype=torch.float64)
    x = x.to(dtype).contiguous(memory_format=torch.channels_last)
    go = go_full.to(dtype).contiguous(memory_format=torch.channels_last)[:, :, ::2]
    assert go.stride(1) == 1 and go.stride(2) != go.size(3) * go.stride(3)
    wshape = [20, 16, 3, 3]
    got = torch.ops.convext.conv2d_grad_weight(go, x, wshape, [1, 1], [1, 1], [1, 1], 1)
    ref = reference(go, x, wshape, [1, 1], [1, 1], [1, 1], 1, 2)
    abs_ref = reference(go.abs(), x.abs(), wshape, [1, 1], [1, 1], [1, 1], 1, 2)
    assert_within(got, ref, abs_ref, go[0, 0].numel() * 2, dtype, "grad_weight")
