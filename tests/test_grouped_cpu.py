"""The CPU grouped direct conv (csrc/ops/cpu/grouped_conv_cpu.h): groups of
at most 32 channels, vectors along output channels covering several small
groups ("expanded" input rows) or a group spanning whole vectors (broadcast
input channels). Every case asserts through convext._C.cpu_path that the path
runs (forward, grad_input at stride 1, grad_weight), then compares values and
gradients with torch's float64 result, in float32, float64 and bfloat16, NCHW
and channels_last; plus fast-mode gradcheck, empty batches, non-contiguous
inputs, thread-count independence and where the path stops applying."""
import pytest
import torch
import torch.nn.functional as F

import convext
from convext import _C
from conftest import ConvCase, assert_close_to_torch, case_id

CASES = [
    # 4 in / 4 out per group (ResNeXt l1): 4 groups per float32 vector
    ConvCase(2, 2, 32, 32, (40, 40), (3, 3), padding=1, groups=8),
    # 16 / 16 (ResNeXt l3): a group spans a float32 vector
    ConvCase(2, 2, 64, 64, (20, 20), (3, 3), padding=1, groups=4),
    # 32 / 32: a group spans two vectors
    ConvCase(2, 4, 64, 64, (16, 17), (3, 3), padding=1, groups=2),
    # 3 in / 5 out: groups straddle vectors, 20 lanes of 32 used
    ConvCase(2, 3, 12, 20, (33, 29), (3, 3), padding=1, groups=4),
    # 2 in / 8 out and 8 in / 2 out
    ConvCase(2, 2, 16, 64, (24, 24), (3, 3), padding=1, groups=8),
    ConvCase(2, 8, 64, 16, (30, 30), (3, 3), padding=1, groups=8, bias=False),
    # 1x1, and a non-square kernel with uneven padding
    ConvCase(2, 2, 32, 32, (30, 30), (1, 1), groups=8),
    ConvCase(2, 4, 16, 16, (40, 37), (5, 3), padding=(2, 0), groups=4),
    # padding past the kernel's reach: grad_input's own padding is negative
    ConvCase(2, 3, 32, 32, (24, 24), (3, 3), padding=3, groups=8),
    # dilation
    ConvCase(2, 4, 32, 32, (30, 31), (3, 3), padding=2, dilation=2, groups=16),
    # conv1d (a whole row per buffer: it takes a batch this large)
    ConvCase(1, 32, 32, 32, (100,), (5,), padding=2, groups=8),
]
# Strided: grad_input goes to the GEMM (its direct form needs stride 1), and
# so does the forward from NCHW.
STRIDED = [
    ConvCase(2, 6, 32, 32, (37, 31), (3, 3), stride=2, padding=(2, 1), groups=16),
    ConvCase(2, 4, 64, 64, (27, 28), (3, 3), stride=(2, 1), padding=1, groups=4),
]


def cpu_paths(case, x, w):
    stride, padding, dilation, groups = case.op_params()
    op = f"conv{case.dims}d"
    out = convext.conv1d(x, w, None, **case.conv_kwargs) if case.dims == 1 else \
        convext.conv2d(x, w, None, **case.conv_kwargs)
    return (_C.cpu_path(op, x, w, [], stride, padding, dilation, groups),
            _C.cpu_path(op + "_grad_input", out, w, list(x.shape), stride, padding, dilation,
                        groups),
            _C.cpu_path(op + "_grad_weight", out, x, list(w.shape), stride, padding, dilation,
                        groups))


def layout(t, name):
    return t.contiguous(memory_format=torch.channels_last) if name == "channels_last" else t


AMX = "amx" in convext.cpu_isa()


@pytest.mark.parametrize("mem", ["nchw", "channels_last"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16], ids=str)
@pytest.mark.parametrize("case", CASES + STRIDED, ids=case_id)
def test_matches_torch(case, dtype, mem):
    if mem == "channels_last" and case.dims == 1:
        pytest.skip("channels_last is 2D")
    x, w, b = case.make(dtype)
    x = layout(x, mem)
    paths = cpu_paths(case, x, w)
    icg, ocg = case.C // case.groups, case.OC // case.groups
    if (AMX and dtype == torch.bfloat16 and mem == "channels_last" and icg == 16
            and case.groups % 2 == 0 and 4 * ocg >= 32):
        # bfloat16 groups of 16 fuse in pairs on AMX tiles (test_nhwc.py)
        assert paths[0] == "nhwc", paths
        paths = ("grouped",) + paths[1:]
    if case in STRIDED:
        # grad_input: a GEMM (its direct form needs stride 1); the forward
        # too from NCHW (converting rows would cost as much as the conv)
        assert paths[1] in ("gather", "nhwc"), paths
        assert mem == "channels_last" or paths[0] == "gather", paths
        paths = ("grouped", "grouped", paths[2])
    assert paths == ("grouped",) * 3, paths
    assert_close_to_torch(case.dims, x, w, b, **case.conv_kwargs)


@pytest.mark.parametrize("case", [CASES[0], CASES[3], CASES[9], STRIDED[0]], ids=case_id)
def test_gradcheck(case, single_thread):
    """Fast-mode gradcheck and gradgradcheck (one random projection each), on
    shapes the path takes in float64."""
    x, w, b = case.make(torch.float64)
    x = layout(x, "channels_last" if case in STRIDED else "nchw")
    assert cpu_paths(case, x, w)[0] == "grouped"
    fn = convext.conv1d if case.dims == 1 else convext.conv2d
    args = (x.requires_grad_(), w.requires_grad_(), b.requires_grad_())
    f = lambda x, w, b: fn(x, w, b, **case.conv_kwargs)  # noqa: E731
    assert torch.autograd.gradcheck(f, args, fast_mode=True)
    assert torch.autograd.gradgradcheck(f, args, fast_mode=True)


def test_empty_batch_and_noncontiguous():
    case = CASES[0]
    x, w, b = case.make(torch.float32)
    assert_close_to_torch(2, x[:0], w, b, **case.conv_kwargs)
    # every other column of a wider tensor, and a channel slice of another
    wide = torch.randn(2, 32, 40, 80)
    assert cpu_paths(case, wide[..., ::2], w)[0] == "grouped"
    assert_close_to_torch(2, wide[..., ::2], w, b, **case.conv_kwargs)
    more = torch.randn(2, 48, 40, 40).contiguous(memory_format=torch.channels_last)
    assert_close_to_torch(2, more[:, 8:40], w, b, **case.conv_kwargs)


@pytest.mark.parametrize("mem", ["nchw", "channels_last"])
@pytest.mark.parametrize("case", [CASES[0], CASES[1], STRIDED[0]], ids=case_id)
def test_independent_of_thread_count(case, mem):
    x, w, b = case.make(torch.float32)
    x = layout(x, mem)
    go = torch.randn(F.conv2d(x, w, b, **case.conv_kwargs).shape)

    def run():
        xs, ws = x.clone().requires_grad_(), w.clone().requires_grad_()
        out = convext.conv2d(xs, ws, b, **case.conv_kwargs)
        return [out] + list(torch.autograd.grad(out, (xs, ws), go))

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = run()
        torch.set_num_threads(2)
        two = run()
    finally:
        torch.set_num_threads(before)
    for a, c in zip(one, two):
        assert torch.equal(a, c)


def test_where_it_stops_applying():
    """Groups over 32 channels, depthwise, and shapes too small for the row
    buffers to fit in the output's size go elsewhere."""
    big = ConvCase(2, 2, 128, 128, (20, 20), (3, 3), padding=1, groups=2)
    assert cpu_paths(big, *big.make(torch.float32)[:2])[0] != "grouped"
    dw = ConvCase(2, 2, 32, 32, (40, 40), (3, 3), padding=1, groups=32)
    assert cpu_paths(dw, *dw.make(torch.float32)[:2])[0].startswith("depthwise")
    tiny = ConvCase(2, 1, 8, 8, (5, 5), (3, 3), padding=1, groups=2)
    assert "grouped" not in cpu_paths(tiny, *tiny.make(torch.float32)[:2])
