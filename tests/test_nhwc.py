"""The channels-last (NHWC) CPU path: forward and grad_input as indirect GEMMs
reading pixels' channel runs in place, grad_weight from row copies (see
csrc/ops/cpu/nhwc_conv_cpu.cpp). Every operand, grad_output included, is
channels-last here, so each op takes that path where it applies: the forward
needs >= 24 output channels per group (12 for float64), grad_input as many
input channels, float32/float64/bfloat16 (float16 keeps the packed GEMM for
forward/grad_input but takes the NHWC grad_weight). Values against torch in
float64."""
import pytest
import torch

from conftest import ConvCase, assert_close_to_torch, case_id, default_grad_output, dtype_id

CL = torch.channels_last

CASES = [
    ConvCase(2, 2, 32, 48, (9, 7), (3, 3), padding=1),
    ConvCase(2, 2, 37, 29, (8, 9), (3, 3), stride=2),             # odd C, bf16 pair tail
    ConvCase(2, 2, 64, 64, (6, 7), (3, 3), padding=1, groups=2),  # groups
    ConvCase(2, 2, 30, 40, (11, 10), (2, 2), stride=3, padding=1),  # stride > kernel
    ConvCase(2, 2, 26, 50, (9, 8), (3, 3), dilation=2, padding="same"),
    ConvCase(2, 2, 3, 32, (20, 18), (7, 7), stride=2, padding=3),  # stem: several taps a block
    ConvCase(2, 3, 40, 56, (7, 9), (1, 1), bias=False),            # 1x1
    ConvCase(2, 1, 300, 36, (5, 6), (1, 1)),                      # several channel chunks
    ConvCase(2, 1, 260, 30, (4, 5), (3, 2), padding=(1, 0), stride=(1, 2)),
    ConvCase(2, 0, 32, 48, (5, 5), (3, 3), padding=1),             # empty batch
]


def _channels_last(t):
    """2D: torch's channels_last; 1D: (N, C, L) with C innermost."""
    if t.dim() == 4:
        return t.contiguous(memory_format=CL)
    return t.transpose(1, 2).contiguous().transpose(1, 2)


def _cl_grad_output(out):
    return _channels_last(default_grad_output(out))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.float16],
                         ids=dtype_id)
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_channels_last_matches_torch(case, dtype):
    x, w, b = case.make(dtype)
    x = _channels_last(x)
    assert x.stride(1) == 1
    assert_close_to_torch(2, x, _channels_last(w), b, grad_output=_cl_grad_output,
                          **case.conv_kwargs)


CASES_1D = [
    ConvCase(1, 2, 30, 40, (17,), (5,), padding=2),
    ConvCase(1, 3, 33, 25, (20,), (3,), stride=2, dilation=3, groups=1),
    ConvCase(1, 2, 48, 48, (12,), (4,), padding="same", groups=2),
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16], ids=dtype_id)
@pytest.mark.parametrize("case", CASES_1D, ids=case_id)
def test_channels_innermost_1d_matches_torch(case, dtype):
    x, w, b = case.make(dtype)
    x = _channels_last(x)
    assert x.stride(1) == 1
    assert_close_to_torch(1, x, w, b, grad_output=_cl_grad_output, **case.conv_kwargs)


NHWC_VIEWS = {
    "spatial_slice": lambda t: t.contiguous(memory_format=CL)[:, :, 1::2, 1:],
    "channel_slice": lambda t: torch.cat([t, t], 1).contiguous(memory_format=CL)[:, 3:3 + t.shape[1]],
    "padded_pixels": lambda t: torch.nn.functional.pad(
        t.permute(0, 2, 3, 1), (0, 5)).permute(0, 3, 1, 2)[:, :t.shape[1]],
}


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=dtype_id)
@pytest.mark.parametrize("view", NHWC_VIEWS)
def test_noncontiguous_nhwc_views(view, dtype):
    x, w, b = ConvCase(2, 2, 28, 40, (9, 8), (3, 3), padding=1, stride=(2, 1)).make(dtype)
    x = NHWC_VIEWS[view](x)
    assert x.stride(1) == 1 and not x.is_contiguous(memory_format=CL)

    def grad_output(out):
        return NHWC_VIEWS["channel_slice"](default_grad_output(out))
    assert_close_to_torch(2, x, w, b, grad_output=grad_output, padding=1, stride=(2, 1))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=dtype_id)
def test_channels_last_independent_of_threads(dtype):
    """Bit-identical results at 1 and 2 threads (tiling changes, sums don't)."""
    import convext
    x, w, b = ConvCase(2, 4, 96, 64, (14, 13), (3, 3), padding=1).make(dtype)
    x, w = x.contiguous(memory_format=CL), w.contiguous(memory_format=CL)
    x.requires_grad_(True)
    w.requires_grad_(True)
    results = []
    before = torch.get_num_threads()
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            out = convext.conv2d(x, w, b, padding=1)
            gx, gw = torch.autograd.grad(out, (x, w), _cl_grad_output(out))
            results.append((out, gx, gw))
    finally:
        torch.set_num_threads(before)
    for a, c in zip(*results):
        assert torch.equal(a, c)


AMX = "amx" in __import__("convext").cpu_isa()
FUSED_CASES = [
    # (case, forward path): groups of 16 channels fuse in pairs on AMX
    (ConvCase(2, 2, 32, 32, (7, 9), (3, 3), padding=1, groups=2), "nhwc"),
    (ConvCase(2, 2, 128, 128, (6, 5), (3, 3), padding=1, groups=8), "nhwc"),  # ResNeXt's later
    (ConvCase(2, 2, 64, 48, (9, 11), (3, 3), stride=2, padding=1, groups=4), "nhwc"),  # ocg 12
    (ConvCase(2, 2, 64, 64, (5, 6), (1, 1), groups=4, bias=False), "nhwc"),
    (ConvCase(2, 0, 64, 64, (5, 5), (3, 3), padding=1, groups=4), "empty"),  # empty batch
    # not fused: an odd group count (unfused nhwc), too few output channels
    # to fill half a tile
    (ConvCase(2, 2, 48, 48, (6, 7), (3, 3), padding=1, groups=3), "nhwc"),
    (ConvCase(2, 2, 64, 16, (6, 7), (3, 3), padding=1, groups=4), "staged"),
]


@pytest.mark.skipif(not AMX, reason="needs AMX tiles (fused groups)")
@pytest.mark.parametrize("case,path", FUSED_CASES, ids=[case_id(c) for c, _ in FUSED_CASES])
def test_fused_groups_forward(case, path):
    """bfloat16 groups of 16 channels run in pairs, as one group with a
    block-diagonal weight (nhwc_fused_groups): the forward's path, values
    and gradients against float64; an NCHW or contiguous weight alike."""
    from convext import _C
    x, w, b = case.make(torch.bfloat16)
    x = _channels_last(x)
    st, pd, dl, g = case.op_params()
    assert _C.cpu_path("conv2d", x, w, [], st, pd, dl, g) == path
    for weight in (w, _channels_last(w)):
        assert_close_to_torch(2, x, weight, b, grad_output=_cl_grad_output, **case.conv_kwargs)
