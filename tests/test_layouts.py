"""Memory layouts: non-contiguous, channels_last, expanded (stride-0) inputs,
weights and grad_outputs give torch's values; the output's memory format
follows torch's rule (2D), and 1D outputs are contiguous."""
import pytest
import torch
import torch.nn.functional as F

import convext
from conftest import ConvCase, assert_close_to_torch, dtype_id


def _permuted(t, order):
    """Same values as t, but stored with its dims in `order` (non-contiguous)."""
    inverse = [order.index(i) for i in range(len(order))]
    return t.permute(order).contiguous().permute(inverse)


NONCONTIGUOUS_2D = {
    "sliced": lambda x: torch.cat([x, x], 3)[:, :, :, ::2],
    "offset_slice": lambda x: F.pad(x, (1, 0, 2, 0))[:, :, 2:, 1:],
    "spatial_transposed": lambda x: _permuted(x, [0, 1, 3, 2]),
    "channels_last": lambda x: x.contiguous(memory_format=torch.channels_last),
    "batch_innermost": lambda x: _permuted(x, [1, 2, 3, 0]),
    "expanded": lambda x: x[:, :1].expand(x.shape),                          # stride 0
}


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=dtype_id)
@pytest.mark.parametrize("layout", NONCONTIGUOUS_2D)
@pytest.mark.parametrize("groups", [1, 4])
def test_noncontiguous_input_and_weight(layout, groups, dtype, device):
    x, w, b = ConvCase(2, 2, 4, 8, (7, 6), (3, 2), groups=groups).make(dtype, device)
    make = NONCONTIGUOUS_2D[layout]
    x, w = make(x), make(w)
    b = torch.stack([b, b], 1)[:, 1]  # strided bias
    assert not x.is_contiguous() and not b.is_contiguous()
    assert_close_to_torch(2, x, w, b, stride=(2, 1), padding=1, groups=groups)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=dtype_id)
@pytest.mark.parametrize("layout", NONCONTIGUOUS_2D)
@pytest.mark.parametrize("kernel,padding", [((3, 3), 1), ((1, 1), 0)], ids=["3x3", "1x1"])
def test_noncontiguous_wide_stride1(layout, kernel, padding, dtype, device):
    """Wide stride-1 convs (the CPU's staged-plane and direct 1x1 paths read
    the input in their own ways) in every layout."""
    x, w, b = ConvCase(2, 2, 8, 6, (5, 26), kernel, groups=2).make(dtype, device)
    x = NONCONTIGUOUS_2D[layout](x)
    assert_close_to_torch(2, x, w, b, padding=padding, groups=2)


@pytest.mark.parametrize("groups", [1, 4])
def test_noncontiguous_1d(groups, device):
    x, w, b = ConvCase(1, 2, 4, 8, (15,), (3,), groups=groups).make(torch.float32, device)
    x = _permuted(x, [2, 0, 1])         # length outermost
    w = torch.cat([w, w], 2)[:, :, ::2]  # strided taps
    assert_close_to_torch(1, x, w, b, stride=2, padding=1, groups=groups)


@pytest.mark.parametrize("groups", [1, 4])
@pytest.mark.parametrize("which", ["input", "weight", "both", "neither"])
def test_output_memory_format_follows_torch(which, groups, device):
    x, w, _ = ConvCase(2, 2, 4, 8, (6, 7), (3, 3), groups=groups).make(torch.float32, device)
    cl = torch.channels_last
    if which in ("input", "both"):
        x = x.contiguous(memory_format=cl)
    if which in ("weight", "both"):
        w = w.contiguous(memory_format=cl)
    ours = convext.conv2d(x, w, groups=groups, padding=1)
    theirs = F.conv2d(x, w, groups=groups, padding=1)
    expect_cl = which != "neither" and not (which == "weight" and groups == 4)
    # (a (8, 1, 3, 3) weight is contiguous in both formats and suggests neither)
    assert ours.is_contiguous(memory_format=cl if expect_cl else torch.contiguous_format)
    assert ours.stride() == theirs.stride()


def test_output_1d_is_contiguous(device):
    x, w, b = ConvCase(1, 2, 4, 6, (9,), (3,)).make(torch.float32, device)
    x = _permuted(x, [0, 2, 1])
    w = _permuted(w, [0, 2, 1])
    assert convext.conv1d(x, w, b).is_contiguous()


@pytest.mark.parametrize("dims", [1, 2])
@pytest.mark.parametrize("expand", ["scalar", "per_channel"])
def test_expanded_grad_output(dims, expand, device):
    case = ConvCase(dims, 2, 3, 4, (7,) * dims, (3,) * dims, stride=2, padding=1)
    x, w, b = case.make(torch.float32, device)

    def grad_output(out):
        shape = [1] * out.dim()
        if expand == "per_channel":
            shape[1] = out.shape[1]
        return torch.randn(shape, device=out.device).expand(out.shape)

    assert_close_to_torch(dims, x, w, b, grad_output=grad_output, **case.conv_kwargs)


@pytest.mark.parametrize("groups", [1, 3])
def test_expanded_grad_output_depthwise_and_channels_last(groups, device):
    x, w, b = ConvCase(2, 2, 3, 6, (6, 5), (3, 3), groups=groups).make(torch.float32, device)
    x = x.contiguous(memory_format=torch.channels_last)
    assert_close_to_torch(2, x, w, b, grad_output=lambda out: torch.ones(()).expand(out.shape),
                          padding=1, groups=groups)
