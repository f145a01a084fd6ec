"""The few-input-channel CPU path (csrc/ops/cpu/small_c_conv_cpu.h, select_path's
'small_c': groups == 1 and C <= 4): which convs take it, and its values and
gradients against torch in every dtype, NCHW and channels_last, 1D and 2D,
odd sizes (stride > kernel, dilation, padding past the input, panels and
bands cut mid-image), empty batch, non-contiguous tensors; gradcheck in
float64; results independent of the thread count."""
import pytest
import torch
import torch.nn.functional as F

import convext
from convext import _C

from conftest import ConvCase, assert_close_to_torch, case_id

DTYPES = [torch.float32, torch.float64, torch.bfloat16, torch.float16]


def cpu_paths(x, w, dims, stride, padding, dilation, groups=1):
    """(forward, grad_input, grad_weight) paths convext takes for this conv."""
    def rep(v):
        return [v] * dims if isinstance(v, int) else list(v)

    args = (rep(stride), rep(padding), rep(dilation), groups)
    out = (F.conv1d if dims == 1 else F.conv2d)(x, w, stride=stride, padding=padding,
                                                 dilation=dilation, groups=groups)
    op = f"conv{dims}d"
    return (_C.cpu_path(op, x, w, [], *args),
            _C.cpu_path(op + "_grad_input", out, w, list(x.shape), *args),
            _C.cpu_path(op + "_grad_weight", out, x, list(w.shape), *args))


CASES = [
    # the ResNet stem, cut down: 7x7 stride 2 pad 3
    ConvCase(2, 2, 3, 64, (23, 37), (7, 7), stride=2, padding=3),
    # wav2vec2's conv0 shape, shorter: C=1, k=10, stride 5, no bias
    ConvCase(1, 2, 1, 24, (203,), (10,), stride=5, bias=False),
    # more than one column panel, band and task (W, H large)
    ConvCase(2, 1, 4, 9, (70, 130), (3, 5), stride=(1, 2), padding=(2, 1)),
    ConvCase(1, 3, 2, 33, (1000,), (7,), stride=3, padding=4),
    # stride larger than the kernel, dilation (the forward's per-kh calls)
    ConvCase(2, 2, 2, 5, (17, 19), (2, 3), stride=(3, 4), dilation=(3, 2), padding=(1, 2)),
    ConvCase(1, 2, 1, 3, (40,), (3,), stride=1, dilation=7, padding=9),
    # stride at least the kernel's reach: the forward's bands are single rows
    ConvCase(2, 2, 2, 6, (19, 17), (3, 3), stride=4, padding=1),
    # padding wider than the input: rows and columns of only zeros
    ConvCase(2, 2, 3, 4, (4, 5), (3, 3), stride=2, padding=5),
    # 64+ output channels: grad_weight's wide kernel, taps sharing phase rows
    # (dilation 2, stride 3: phases 0, 2, 1, 0, 2)
    ConvCase(2, 2, 1, 64, (13, 40), (2, 5), stride=(1, 3), dilation=(1, 2), padding=(1, 4)),
    ConvCase(1, 2, 1, 128, (300,), (10,), stride=5),
    # 1x1 and a single tap along W
    ConvCase(2, 2, 4, 7, (6, 9), (1, 1)),
    ConvCase(2, 2, 3, 10, (9, 8), (4, 1), stride=(2, 1)),
]


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_takes_the_path(case):
    x, w, _ = case.make(torch.float32)
    st, pd, dl, _ = case.op_params()
    assert cpu_paths(x, w, case.dims, st, pd, dl) == ("small_c",) * 3


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_matches_torch(case, dtype):
    x, w, b = case.make(dtype)
    assert_close_to_torch(case.dims, x, w, b, **case.conv_kwargs)


AMX = "amx" in convext.cpu_isa()


def forward_path(x, w, out):
    """small_c_tiles (small_c_tiles_cpu.cpp) for a bfloat16 forward on AMX
    with channels innermost in and out and 16+ output channels; else small_c."""
    tiles = (AMX and x.dtype == torch.bfloat16 and x.stride(1) == 1 and out.stride(1) == 1
             and w.shape[0] >= 16)
    return "small_c_tiles" if tiles else "small_c"


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16], ids=str)
@pytest.mark.parametrize("case", [c for c in CASES if c.dims == 2], ids=case_id)
def test_channels_last(case, dtype):
    x, w, b = case.make(dtype)
    x = x.contiguous(memory_format=torch.channels_last)
    st, pd, dl, _ = case.op_params()
    expected = forward_path(x, w, F.conv2d(x, w, **case.conv_kwargs))
    assert cpu_paths(x, w, 2, st, pd, dl) == (expected, "small_c", "small_c")
    out = assert_close_to_torch(2, x, w, b, **case.conv_kwargs)
    # torch's layout (channels_last, except a 1-channel input stays NCHW)
    assert out.stride() == F.conv2d(x, w, b, **case.conv_kwargs).stride()


TILE_CASES = [
    # the ResNet stem, cut down; 2 column blocks of 32
    ConvCase(2, 2, 3, 64, (23, 37), (7, 7), stride=2, padding=3),
    # OC not a multiple of 32 (17: half a column block and one more)
    ConvCase(2, 3, 3, 17, (9, 11), (3, 3), padding=1),
    ConvCase(2, 1, 2, 40, (13, 10), (5, 3), stride=(2, 3), padding=(2, 1)),
    # K = 4*16*16 = 1024: more than one K block of the tile kernel
    ConvCase(2, 1, 4, 32, (20, 19), (16, 16), padding=3),
    # 1x1: K = C, one 32-k chunk, mostly zero
    ConvCase(2, 2, 3, 16, (6, 7), (1, 1)),
    # dilation (a window row is not one run), stride > kernel, padding past the input
    ConvCase(2, 2, 3, 24, (17, 19), (2, 3), stride=(3, 4), dilation=(3, 2), padding=(1, 2)),
    ConvCase(2, 2, 3, 16, (4, 5), (3, 3), stride=2, padding=5),
]


@pytest.mark.skipif(not AMX, reason="needs AMX tiles (small_c_tiles)")
@pytest.mark.parametrize("case", TILE_CASES, ids=case_id)
def test_tiles_forward(case):
    """The bfloat16 forward on AMX tiles: values (and the small_c backward)
    against float64, channels_last in and out, including a width-strided
    input (each window run read value by value) and an empty batch."""
    x, w, b = case.make(torch.bfloat16)
    x = x.contiguous(memory_format=torch.channels_last)
    st, pd, dl, _ = case.op_params()
    assert cpu_paths(x, w, 2, st, pd, dl)[0] == "small_c_tiles"
    out = assert_close_to_torch(2, x, w, b, **case.conv_kwargs)
    assert out.is_contiguous(memory_format=torch.channels_last)
    wide = torch.zeros(*x.shape[:3], 2 * x.shape[3], dtype=x.dtype).contiguous(
        memory_format=torch.channels_last)
    wide[..., ::2] = x
    strided = wide[..., ::2]
    assert strided.stride(1) == 1 and strided.stride(3) == 2 * x.shape[1]
    assert cpu_paths(strided, w, 2, st, pd, dl)[0] == "small_c_tiles"
    torch.testing.assert_close(convext.conv2d(strided, w, b, **case.conv_kwargs), out,
                               atol=0, rtol=0)
    empty = x[:0]
    assert convext.conv2d(empty, w, b, **case.conv_kwargs).shape == (0, *out.shape[1:])


def test_non_contiguous_and_empty_batch():
    base = torch.randn(2, 6, 21, 30, dtype=torch.float64)
    x = base[:, ::2, :, ::2]  # strided channels and columns
    w = torch.randn(64, 3, 7, 7, dtype=torch.float64).transpose(2, 3)  # strided weight
    assert_close_to_torch(2, x, w, None, stride=2, padding=3)
    empty = torch.randn(0, 3, 20, 20, dtype=torch.float64)
    assert cpu_paths(empty, w.contiguous(), 2, [2, 2], [3, 3], [1, 1])[2] == "small_c"
    assert_close_to_torch(2, empty, w, torch.randn(64, dtype=torch.float64), stride=2, padding=3)


def test_gradcheck(single_thread):
    x = torch.randn(2, 3, 9, 8, dtype=torch.float64, requires_grad=True)
    w = torch.randn(5, 3, 3, 4, dtype=torch.float64, requires_grad=True)
    b = torch.randn(5, dtype=torch.float64, requires_grad=True)
    fn = lambda x, w, b: convext.conv2d(x, w, b, stride=2, padding=(1, 2))  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x, w, b))
    assert torch.autograd.gradgradcheck(fn, (x, w, b))
    x1 = torch.randn(2, 1, 31, dtype=torch.float64, requires_grad=True)
    w1 = torch.randn(4, 1, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, w: convext.conv1d(x, w, stride=3), (x1, w1))


def test_bounds_of_the_path():
    """groups > 1, more than 4 input channels, or a dilated kernel taller
    than 64 rows go elsewhere."""
    def fwd(x, w, dims=2, stride=1, padding=0, dilation=1, groups=1):
        return cpu_paths(x, w, dims, stride, padding, dilation, groups)[0]

    assert fwd(torch.randn(1, 4, 9, 9), torch.randn(8, 4, 3, 3)) == "small_c"
    assert fwd(torch.randn(1, 5, 9, 9), torch.randn(8, 5, 3, 3)) != "small_c"
    assert fwd(torch.randn(1, 4, 9, 9), torch.randn(8, 2, 3, 3), groups=2) != "small_c"
    assert fwd(torch.randn(1, 1, 70, 9), torch.randn(8, 1, 2, 3), dilation=(63, 1)) == "small_c"
    assert fwd(torch.randn(1, 1, 70, 9), torch.randn(8, 1, 2, 3), dilation=(64, 1)) != "small_c"


@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
def test_thread_count_does_not_change_results(layout):
    x = torch.randn(2, 3, 64, 50)
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    w = torch.randn(16, 3, 7, 7)
    before = torch.get_num_threads()
    results = []
    try:
        for threads in (1, 2, 3):
            torch.set_num_threads(threads)
            xg, wg = x.clone().requires_grad_(), w.clone().requires_grad_()
            y = convext.conv2d(xg, wg, stride=2, padding=3)
            gx, gw = torch.autograd.grad(y, (xg, wg), torch.ones_like(y))
            results.append((y, gx, gw))
    finally:
        torch.set_num_threads(before)
    for r in results[1:]:
        assert all(torch.equal(a, b) for a, b in zip(results[0], r))


@pytest.mark.parametrize("oc", [64, 40, 5])
@pytest.mark.parametrize("layout", ["nchw", "channels_last", "width_strided", "channel_strided"])
def test_bf16_grad_input_layouts(layout, oc):
    """The bfloat16 grad_input (on AMX: the tiles, grad_output's channel pairs
    read by a word transpose (channels innermost, even OC), two interleaved
    channel rows (unit width stride) or value by value) against float64 on
    the same values, for every way grad_output can be laid out, with OC a
    multiple of 32, not, and odd."""
    g = torch.Generator().manual_seed(7)
    x = torch.randn(2, 3, 23, 37, generator=g).bfloat16()
    w = torch.randn(oc, 3, 7, 7, generator=g).bfloat16()
    args = ([2, 2], [3, 3], [1, 1], 1)
    shape = F.conv2d(x.float(), w.float(), stride=2, padding=3).shape
    go = torch.randn(shape, generator=g).bfloat16()
    if layout == "channels_last":
        go = go.contiguous(memory_format=torch.channels_last)
    elif layout == "width_strided":
        go = torch.zeros(*shape[:3], 2 * shape[3], dtype=go.dtype).copy_(
            go.repeat_interleave(2, dim=3))[..., ::2]
    elif layout == "channel_strided":
        go = torch.cat([go, go], 1).contiguous(memory_format=torch.channels_last)[:, ::2]
    assert _C.cpu_path("conv2d_grad_input", go, w, list(x.shape), *args) == "small_c"
    got = torch.ops.convext.conv2d_grad_input(go, w, list(x.shape), *args)
    ref = torch.ops.aten.convolution_backward(go.double(), x.double(), w.double(), None,
                                              *args[:3], False, [0, 0], 1,
                                              [True, False, False])[0]
    mag = torch.ops.aten.convolution_backward(go.double().abs(), x.double(), w.double().abs(),
                                              None, *args[:3], False, [0, 0], 1,
                                              [True, False, False])[0]
    bound = 2.0**-8 * ref.abs() + 2.0**-20 * mag
    assert ((got.double() - ref).abs() <= bound).all()


@pytest.mark.parametrize("oc", [64, 40, 5])
@pytest.mark.parametrize("layout", ["nchw", "channels_last", "mixed", "width_strided"])
def test_bf16_grad_weight_layouts(layout, oc):
    """The bfloat16 grad_weight (on AMX: the tiles, A grad_output transposed
    (channels innermost) or copied a row's run at a time (channels apart),
    B the im2col's position pairs, an NCHW input staged channels innermost)
    against float64 on the same values; more positions than one chunk."""
    g = torch.Generator().manual_seed(8)
    x = torch.randn(2, 3, 61, 67, generator=g).bfloat16()
    w_shape = [oc, 3, 7, 7]
    args = ([2, 2], [3, 3], [1, 1], 1)
    shape = F.conv2d(x.float(), torch.zeros(w_shape), stride=2, padding=3).shape
    go = torch.randn(shape, generator=g).bfloat16()
    if layout in ("channels_last", "mixed"):
        go = go.contiguous(memory_format=torch.channels_last)
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    if layout == "width_strided":
        go = torch.zeros(*shape[:3], 2 * shape[3], dtype=go.dtype).copy_(
            go.repeat_interleave(2, dim=3))[..., ::2]
    assert _C.cpu_path("conv2d_grad_weight", go, x, w_shape, *args) == "small_c"
    got = torch.ops.convext.conv2d_grad_weight(go, x, w_shape, *args)
    w = torch.zeros(w_shape, dtype=torch.float64)
    ref = torch.ops.aten.convolution_backward(go.double(), x.double(), w, None, *args[:3], False,
                                              [0, 0], 1, [False, True, False])[1]
    mag = torch.ops.aten.convolution_backward(go.double().abs(), x.double().abs(), w, None,
                                              *args[:3], False, [0, 0], 1,
                                              [False, True, False])[1]
    bound = 2.0**-8 * ref.abs() + 2.0**-24 * shape[2] * shape[3] * 2 * mag
    assert ((got.double() - ref).abs() <= bound).all()


def test_bf16_grad_weight_1d():
    """A waveform front end (1 channel, k=10, stride 5), channels apart."""
    g = torch.Generator().manual_seed(9)
    x = torch.randn(2, 1, 4003, generator=g).bfloat16()
    go = torch.randn(2, 48, 799, generator=g).bfloat16()
    got = torch.ops.convext.conv1d_grad_weight(go, x, [48, 1, 10], [5], [0], [1], 1)
    w = torch.zeros(48, 1, 10, dtype=torch.float64)
    ref = torch.ops.aten.convolution_backward(go.double(), x.double(), w, None, [5], [0], [1],
                                              False, [0], 1, [False, True, False])[1]
    mag = torch.ops.aten.convolution_backward(go.double().abs(), x.double().abs(), w, None, [5],
                                              [0], [1], False, [0], 1, [False, True, False])[1]
    assert ((got.double() - ref).abs() <= 2.0**-8 * ref.abs() + 2.0**-24 * 1600 * mag).all()
