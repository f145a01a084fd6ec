"""gradcheck / gradgradcheck (float64) of conv1d / conv2d and of the backward
ops themselves, and double backward against torch's."""
import pytest
import torch
from torch.autograd import gradcheck, gradgradcheck

from conftest import CONVEXT_FN, TORCH_FN, ConvCase, case_id, no_warnings_about_same

ops = torch.ops.convext
pytestmark = pytest.mark.usefixtures("single_thread")

GRADCHECK_CASES = [
    ConvCase(2, 2, 2, 3, (5, 4), (3, 2)),
    ConvCase(2, 1, 2, 2, (6, 5), (2, 3), stride=(2, 3), padding=(1, 2), dilation=(2, 1)),
    ConvCase(2, 1, 4, 4, (5, 5), (3, 3), padding="same", dilation=2, groups=2),
    ConvCase(2, 1, 2, 2, (5, 4), (2, 2), padding="same", bias=False),
    ConvCase(2, 2, 3, 3, (5, 5), (3, 3), stride=2, padding=1, groups=3),            # depthwise
    ConvCase(2, 1, 2, 4, (5, 5), (3, 2), padding=1, dilation=(1, 2), groups=2),     # mult 2
    ConvCase(2, None, 2, 2, (4, 4), (3, 3), padding=1, bias=False),                 # unbatched
    ConvCase(1, 2, 2, 3, (7,), (3,), stride=2, padding=1),
    ConvCase(1, 1, 4, 4, (8,), (4,), padding="same", dilation=2, groups=4, bias=False),
    ConvCase(1, 1, 2, 4, (7,), (3,), stride=3, padding=2, groups=2),
]


def _conv_fn(case):
    def fn(x, w, *b):
        return CONVEXT_FN[case.dims](x, w, *b, **case.conv_kwargs)
    return fn


def _inputs(case, channels_last=False):
    x, w, b = case.make(torch.float64)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return tuple(t.requires_grad_(True) for t in (x, w, b) if t is not None)


@pytest.mark.parametrize("case", GRADCHECK_CASES, ids=case_id)
def test_gradcheck(case):
    with no_warnings_about_same():
        assert gradcheck(_conv_fn(case), _inputs(case))


@pytest.mark.parametrize("case", GRADCHECK_CASES, ids=case_id)
def test_gradgradcheck(case):
    with no_warnings_about_same():
        assert gradgradcheck(_conv_fn(case), _inputs(case))


def test_gradgradcheck_channels_last():
    case = ConvCase(2, 1, 2, 3, (4, 5), (2, 2), padding=1)
    assert gradgradcheck(_conv_fn(case), _inputs(case, channels_last=True))


@pytest.mark.parametrize("case", GRADCHECK_CASES, ids=case_id)
def test_double_backward_matches_torch(case):
    assert_double_backward_matches(CONVEXT_FN[case.dims], TORCH_FN[case.dims],
                                   case.make(torch.float64), case.conv_kwargs)


def assert_double_backward_matches(ours_fn, torch_fn, tensors, kwargs):
    """d/d(x, w, go) of <grad(x, w, b), v> for random v, against torch's, for
    fn(x, w, b, **kwargs) (b may be None)."""
    results = []
    for fn in (ours_fn, torch_fn):
        leaves = [t.clone().requires_grad_(True) for t in tensors if t is not None]
        with no_warnings_about_same():
            out = fn(*leaves, **kwargs)
        go = torch.linspace(-1, 1, out.numel(), dtype=torch.float64).view_as(out)
        go.requires_grad_(True)
        grads = torch.autograd.grad(out, leaves, go, create_graph=True)
        gen = torch.Generator().manual_seed(5)
        total = sum((g * torch.randn(g.shape, generator=gen, dtype=g.dtype)).sum()
                    for g in grads)
        results.append(torch.autograd.grad(total, leaves[:2] + [go], allow_unused=True))
    for ours, theirs in zip(*results):
        if theirs is None:  # d/dx of grad_x and so on are zero: torch leaves them out
            assert ours is None or ours.abs().max() == 0
        else:
            torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-10)


# Backward ops called directly, on the operands of these convolutions.
BACKWARD_OP_CASES = [
    ConvCase(2, 2, 2, 4, (6, 5), (3, 2), stride=(2, 3), padding=1, dilation=(1, 2), groups=2),
    ConvCase(2, 1, 2, 4, (5, 5), (3, 3), padding=1, groups=2),                      # depthwise
    ConvCase(1, 2, 2, 3, (9,), (3,), stride=2, padding=1, dilation=2),
]


@pytest.mark.parametrize("which", ["grad_input", "grad_weight"])
@pytest.mark.parametrize("case", BACKWARD_OP_CASES, ids=case_id)
def test_backward_op_gradcheck(case, which):
    """gradcheck and gradgradcheck of conv{1,2}d_grad_{input,weight} themselves."""
    x, w, _ = case.make(torch.float64)
    params = case.op_params()
    go = torch.randn(CONVEXT_FN[case.dims](x, w, None, **case.conv_kwargs).shape,
                     dtype=torch.float64, requires_grad=True)
    op = getattr(ops, f"conv{case.dims}d_{which}")
    other, size = (w, list(x.shape)) if which == "grad_input" else (x, list(w.shape))
    other.requires_grad_(True)

    def fn(a, b):
        return op(a, b, size, *params)

    assert gradcheck(fn, (go, other))
    assert gradgradcheck(fn, (go, other))


@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (2, 3, 7), (3, 2)])
def test_grad_bias_op_gradcheck(shape):
    go = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    assert gradcheck(ops.conv_grad_bias, (go,))
    assert gradgradcheck(ops.conv_grad_bias, (go,))
    torch.testing.assert_close(ops.conv_grad_bias(go), go.sum([d for d in range(go.dim())
                                                                if d != 1]))


@pytest.mark.parametrize("needs", ["input", "weight", "bias", "input+bias"])
def test_partial_requires_grad(needs):
    """Only the requested gradients are computed, and they are right."""
    case = ConvCase(2, 2, 3, 4, (6, 5), (3, 3), stride=2, padding=1)
    x, w, b = case.make(torch.float64)
    wanted = [t for name, t in (("input", x), ("weight", w), ("bias", b)) if name in needs]
    for t in wanted:
        t.requires_grad_(True)
    ours = torch.autograd.grad(CONVEXT_FN[2](x, w, b, **case.conv_kwargs).sum(), wanted)
    theirs = torch.autograd.grad(TORCH_FN[2](x, w, b, **case.conv_kwargs).sum(), wanted)
    for a, c in zip(ours, theirs):
        torch.testing.assert_close(a, c, rtol=1e-10, atol=1e-10)
