"""convext.conv1d / conv2d against torch.nn.functional: forward values and the
gradients of input, weight and bias, for every dtype, over many shapes."""
import pytest
import torch
import torch.nn.functional as F

import convext
from conftest import (CONVEXT_FN, FLOAT_DTYPES, ConvCase, assert_close_to_torch, case_id,
                      dtype_id, no_warnings_about_same)

CASES_2D = [
    ConvCase(2, 2, 3, 4, (7, 5), (3, 2)),                                   # non-square
    ConvCase(2, 2, 3, 4, (9, 8), (2, 2), stride=3),                         # stride > kernel
    ConvCase(2, 2, 3, 5, (9, 11), (3, 4), stride=(2, 3), padding=(1, 2), dilation=(2, 1)),
    ConvCase(2, 1, 2, 3, (9, 10), (3, 3), stride=[2], padding=[1], dilation=[2]),  # 1-lists
    ConvCase(2, 2, 3, 4, (8, 9), (3, 5), padding="same", dilation=(2, 1)),  # odd kernel
    ConvCase(2, 2, 3, 4, (8, 9), (4, 2), padding="same"),                   # even: extra right
    ConvCase(2, 2, 3, 4, (8, 9), (2, 4), padding="same", dilation=3),       # odd dilated span
    ConvCase(2, 2, 3, 4, (8, 9), (2, 4), padding="same", dilation=2),       # even dilated span
    ConvCase(2, 2, 3, 4, (6, 7), (3, 3), padding="valid"),
    ConvCase(2, 0, 3, 4, (6, 7), (3, 3), padding=1),                        # empty batch
    ConvCase(2, 2, 5, 6, (4, 3), (1, 1)),                                   # 1x1
    ConvCase(2, 2, 3, 4, (5, 4), (5, 4)),                                   # kernel == input
    ConvCase(2, 1, 1, 1, (1, 1), (1, 1)),                                   # all ones
    ConvCase(2, 1, 96, 2, (4, 4), (3, 3), padding=1),                       # wide in
    ConvCase(2, 1, 2, 96, (4, 4), (3, 3), padding=1),                       # wide out
    ConvCase(2, 2, 40, 36, (20, 22), (3, 3), padding=1),                    # several tiles
    ConvCase(2, 2, 2, 3, (32, 30), (3, 3), padding=1),                      # long reduction
    ConvCase(2, 2, 6, 4, (7, 8), (3, 3), padding=1, groups=2),
    ConvCase(2, 2, 6, 9, (9, 8), (3, 2), stride=(2, 1), dilation=(1, 2), groups=3),
    ConvCase(2, 2, 4, 4, (7, 8), (3, 3), padding=1, groups=4),              # depthwise
    ConvCase(2, 2, 4, 8, (7, 8), (3, 3), padding=1, groups=4),              # multiplier 2
    ConvCase(2, 2, 4, 8, (9, 8), (3, 3), stride=2, padding=1, groups=4),
    ConvCase(2, 2, 3, 6, (9, 9), (5, 3), stride=(3, 2), padding=2, groups=3),  # dw, odd k
    ConvCase(2, 2, 4, 8, (8, 9), (4, 3), padding="same", dilation=2, groups=4),
    ConvCase(2, 2, 3, 4, (7, 5), (3, 3), padding=1, bias=False),
    ConvCase(2, 2, 4, 4, (7, 5), (3, 3), padding=1, groups=4, bias=False),
    ConvCase(2, None, 3, 4, (7, 6), (3, 3), stride=2, padding=1),           # unbatched
    ConvCase(2, None, 4, 8, (7, 6), (2, 2), padding="same", groups=4),      # unbatched dw
    # Wide rows (padding small next to the width) take the CPU's stride-1
    # staged-plane path, in forward and grad_input; 1x1 takes the direct path.
    ConvCase(2, 2, 6, 8, (17, 24), (3, 3), padding=1, groups=2),
    ConvCase(2, 2, 5, 7, (12, 40), (3, 3), padding=2, dilation=2),
    ConvCase(2, 3, 5, 7, (10, 33), (2, 3), padding=(0, 1)),
    ConvCase(2, 3, 9, 5, (6, 17), (1, 1), groups=1),
]

CASES_1D = [
    ConvCase(1, 2, 3, 4, (11,), (3,)),
    ConvCase(1, 2, 3, 5, (13,), (4,), stride=3, padding=2, dilation=2),
    ConvCase(1, 2, 3, 4, (13,), (2,), stride=[4], padding=[1], dilation=[3]),
    ConvCase(1, 2, 3, 4, (12,), (4,), padding="same"),
    ConvCase(1, 2, 3, 4, (12,), (4,), padding="same", dilation=3),
    ConvCase(1, 2, 3, 4, (12,), (3,), padding="valid", bias=False),
    ConvCase(1, 2, 2, 3, (4000,), (10,), stride=5),                         # long sequence
    ConvCase(1, 2, 6, 4, (15,), (3,), padding=1, groups=2),
    ConvCase(1, 2, 4, 8, (15,), (5,), padding=2, groups=4),                 # dw multiplier 2
    ConvCase(1, 0, 3, 4, (9,), (3,)),                                       # empty batch
    ConvCase(1, None, 3, 4, (9,), (3,), padding=1),                         # unbatched
]

ALL_CASES = CASES_2D + CASES_1D


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
@pytest.mark.parametrize("case", ALL_CASES, ids=case_id)
def test_matches_torch(case, dtype, device):
    x, w, b = case.make(dtype, device)
    with no_warnings_about_same():
        out = assert_close_to_torch(case.dims, x, w, b, **case.conv_kwargs)
    assert out.device == x.device


def test_bfloat16_accumulates_in_float32():
    """A 4096-long reduction of positive bf16 terms: accumulating in bf16 would
    stall (1 + 2**-9 rounds back to 1) and lose far more than 1 bf16 ulp."""
    x = torch.full((1, 1024, 2, 2), 1.0, dtype=torch.bfloat16)
    w = torch.full((1, 1024, 2, 2), 1.0 + 2 ** -7, dtype=torch.bfloat16)
    out = convext.conv2d(x, w)
    assert out.item() == torch.tensor(4096 * (1 + 2 ** -7), dtype=torch.bfloat16).item()


def _bf16_accumulating_conv2d(x, w, b=None, **kwargs):
    """A conv2d that rounds its running sum to bfloat16 after every input
    channel: what convext must not do."""
    out = None
    for c in range(x.shape[1]):
        part = F.conv2d(x[:, c:c + 1].float(), w[:, c:c + 1].float(), **kwargs)
        out = part.bfloat16() if out is None else (out.float() + part).bfloat16()
    return (out.float() + b.float().view(1, -1, 1, 1)).bfloat16()


def test_tolerance_rejects_bfloat16_accumulation():
    """The bf16 tolerance is tight enough to tell float32 accumulation from
    bfloat16 accumulation (so test_matches_torch[bfloat16] can fail)."""
    x, w, b = ConvCase(2, 2, 64, 8, (8, 8), (3, 3)).make(torch.bfloat16)
    with pytest.raises(AssertionError, match="output .bfloat16.: .* out of tolerance"):
        assert_close_to_torch(2, x, w, b, fn=_bf16_accumulating_conv2d, padding=1)


@pytest.mark.parametrize("kernel", [2, 5])
def test_causal_depthwise_1d(kernel, device):
    """Causal conv: pad k-1 on both sides, keep the first L outputs; output t
    sees only inputs <= t."""
    L, C = 16, 4
    x, w, b = ConvCase(1, 2, C, 2 * C, (L,), (kernel,), groups=C).make(torch.float64, device)
    x.requires_grad_(True)
    out = convext.conv1d(x, w, b, padding=kernel - 1, groups=C)[..., :L]
    ref = F.conv1d(x, w, b, padding=kernel - 1, groups=C)[..., :L]
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    (grad,) = torch.autograd.grad(out[..., 5].sum(), x)
    assert grad[..., 6:].abs().sum() == 0 and grad[..., 5].abs().sum() > 0


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("dims", [1, 2])
def test_zero_input_channels_like_torch(dims, bias, device):
    """C=0: torch's (N, 0, ...) result (issue 12 dropped convext's former
    (N, OC, ...) bias-filled one); gradients: empty, and zeros for the bias."""
    x = torch.randn(2, 0, *(5,) * dims, device=device, requires_grad=True)
    w = torch.randn(3, 0, *(3,) * dims, device=device, requires_grad=True)
    b = torch.randn(3, device=device, requires_grad=True) if bias else None
    out = CONVEXT_FN[dims](x, w, b, padding=1)
    ref = getattr(F, f"conv{dims}d")(x, w, b, padding=1)
    assert out.shape == ref.shape == (2, 0, *(5,) * dims)
    grads = torch.autograd.grad(out.sum(), [t for t in (x, w, b) if t is not None])
    assert grads[0].shape == x.shape and grads[1].shape == w.shape
    if bias:
        torch.testing.assert_close(grads[2], torch.zeros_like(b))


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
@pytest.mark.parametrize("dims", [1, 2])
def test_same_padding_keeps_spatial_size(dims, dtype, device):
    x, w, b = ConvCase(dims, 1, 2, 3, (6,) * dims, (4,) * dims).make(dtype, device)
    out = CONVEXT_FN[dims](x, w, b, padding="same", dilation=3)
    assert out.shape == (1, 3, *(6,) * dims) and out.dtype == dtype


def test_inference_mode_and_no_grad(device):
    x, w, b = ConvCase(2, 2, 3, 4, (6, 6), (3, 3)).make(torch.float32, device)
    with torch.inference_mode():
        out = convext.conv2d(x, w, b)
    assert out.is_inference()
    with torch.no_grad():
        out = convext.conv2d(x, w.requires_grad_(True), b)
    assert not out.requires_grad
    torch.testing.assert_close(out, F.conv2d(x, w, b))
