"""convext.Conv1d / Conv2d behave exactly like nn.Conv1d / nn.Conv2d: same
construction (and RNG use), attributes, repr, state_dict, padding modes,
values and gradients."""
import copy

import pytest
import torch
from torch import nn

import convext
from conftest import FLOAT_DTYPES, assert_within, dtype_id, no_warnings_about_same

PADDING_MODES = ["zeros", "reflect", "replicate", "circular"]

# (dims, constructor kwargs)
CONFIGS = [
    (2, dict(in_channels=3, out_channels=4, kernel_size=3)),
    (2, dict(in_channels=4, out_channels=6, kernel_size=(3, 2), stride=(2, 1), padding=(1, 2),
             dilation=(1, 2), groups=2, bias=False)),
    (2, dict(in_channels=4, out_channels=8, kernel_size=4, padding="same", groups=4)),
    (2, dict(in_channels=3, out_channels=3, kernel_size=1, padding="valid")),
    (1, dict(in_channels=3, out_channels=5, kernel_size=4, stride=2, padding=3, dilation=2)),
    (1, dict(in_channels=4, out_channels=4, kernel_size=[2], padding="same", groups=2,
             bias=False)),
]


def config_id(config):
    dims, kwargs = config
    return f"{dims}d-" + "-".join(f"{k}={v}" for k, v in kwargs.items()).replace(" ", "")


def nn_cls(dims):
    return getattr(nn, f"Conv{dims}d")


def convext_cls(dims):
    return getattr(convext, f"Conv{dims}d")


def build_pair(dims, kwargs, seed=0):
    """(nn module, convext module), each built right after manual_seed(seed),
    plus whether both left the RNG in the same state."""
    torch.manual_seed(seed)
    theirs = nn_cls(dims)(**kwargs)
    after_theirs = torch.rand(4)
    torch.manual_seed(seed)
    ours = convext_cls(dims)(**kwargs)
    after_ours = torch.rand(4)
    return theirs, ours, torch.equal(after_theirs, after_ours)


@pytest.mark.parametrize("config", CONFIGS, ids=config_id)
def test_construction_matches_nn(config):
    dims, kwargs = config
    theirs, ours, same_rng = build_pair(dims, kwargs)
    assert isinstance(ours, nn_cls(dims)) and type(ours) is convext_cls(dims)
    assert same_rng, "construction consumed the RNG differently"
    assert repr(ours) == repr(theirs)
    for name in ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation",
                 "groups", "padding_mode", "transposed", "output_padding",
                 "_reversed_padding_repeated_twice"):
        assert getattr(ours, name) == getattr(theirs, name), name
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    for (_, p), (_, q) in zip(ours.named_parameters(), theirs.named_parameters()):
        assert torch.equal(p, q) and p.requires_grad
    assert (ours.bias is None) == (theirs.bias is None)


@pytest.mark.parametrize("config", CONFIGS, ids=config_id)
def test_state_dict_loads_both_ways(config):
    dims, kwargs = config
    theirs, ours, _ = build_pair(dims, kwargs, seed=1)
    fresh_nn, fresh_ours, _ = build_pair(dims, kwargs, seed=2)
    fresh_nn.load_state_dict(ours.state_dict())
    fresh_ours.load_state_dict(theirs.state_dict())
    for a, b in zip(fresh_nn.state_dict().values(), ours.state_dict().values()):
        assert torch.equal(a, b)
    for a, b in zip(fresh_ours.state_dict().values(), theirs.state_dict().values()):
        assert torch.equal(a, b)
    assert list(ours.state_dict()) == list(theirs.state_dict())


def _forward_backward(module, x):
    x = x.detach().requires_grad_(True)
    out = module(x)
    go = torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)
    grads = torch.autograd.grad(out, [x] + list(module.parameters()), go)
    return out, grads


@pytest.mark.parametrize("padding_mode", PADDING_MODES)
@pytest.mark.parametrize("config", CONFIGS, ids=config_id)
def test_padding_modes_match_nn(config, padding_mode):
    """Values and all gradients, float64, for every padding mode."""
    dims, kwargs = config
    theirs, ours, _ = build_pair(dims, dict(kwargs, padding_mode=padding_mode,
                                            dtype=torch.float64))
    x = torch.randn(2, kwargs["in_channels"], *(7,) * dims, dtype=torch.float64)
    with no_warnings_about_same():
        ref_out, ref_grads = _forward_backward(theirs, x)
        out, grads = _forward_backward(ours, x)
    torch.testing.assert_close(out, ref_out, rtol=1e-10, atol=1e-10)
    for a, b in zip(grads, ref_grads):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("padding_mode", PADDING_MODES)
@pytest.mark.parametrize("dims", [1, 2])
def test_padding_modes_unbatched_input(dims, padding_mode):
    theirs, ours, _ = build_pair(dims, dict(in_channels=2, out_channels=3, kernel_size=3,
                                            padding=2, padding_mode=padding_mode))
    x = torch.randn(2, *(6,) * dims)
    torch.testing.assert_close(ours(x), theirs(x))


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
@pytest.mark.parametrize("dims", [1, 2])
def test_module_dtype_conversion(dims, dtype):
    """.to(dtype) keeps the class and computes in that dtype (checked against a
    float64 run of nn with the same rounded parameters)."""
    theirs, ours, _ = build_pair(dims, dict(in_channels=3, out_channels=4, kernel_size=3,
                                            padding=1, padding_mode="reflect"))
    ours = ours.to(dtype)
    assert type(ours) is convext_cls(dims) and ours.weight.dtype == dtype
    theirs.double().load_state_dict({k: v.double() for k, v in ours.state_dict().items()})
    x = torch.randn(2, 3, *(6,) * dims).to(dtype)
    out = ours(x)
    ref = theirs(x.double()).detach()
    assert_within(out, ref, _abs_forward(theirs, x.double()), 3 * 3 ** dims + 1, dtype,
                  "module output")


def _abs_forward(module, x):
    """The module run on |x| with |weight| and |bias|: the sum of |a||b| behind
    each output (padding modes only copy values, so pad(|x|) = |pad(x)|)."""
    copy_ = copy.deepcopy(module)
    with torch.no_grad():
        for p in copy_.parameters():
            p.abs_()
        return copy_(x.abs())


def test_factory_kwargs_and_deepcopy():
    m = convext.Conv2d(2, 3, 3, dtype=torch.float64, device="cpu")
    assert m.weight.dtype == torch.float64
    clone = copy.deepcopy(m)
    assert type(clone) is convext.Conv2d
    x = torch.randn(1, 2, 5, 5, dtype=torch.float64)
    torch.testing.assert_close(clone(x), m(x))


def test_forward_hooks_run():
    m = convext.Conv1d(2, 3, 3)
    seen = []
    m.register_forward_hook(lambda mod, args, out: seen.append(out.shape))
    m(torch.randn(4, 2, 9))
    assert seen == [torch.Size([4, 3, 7])]


@pytest.mark.parametrize("dims", [1, 2])
def test_module_runs_convext_op(dims):
    """The module's forward goes through torch.ops.convext, not nn's conv."""
    m = convext_cls(dims)(2, 3, 3, padding=1, padding_mode="circular")
    x = torch.randn(1, 2, *(5,) * dims)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        m(x)
    names = {e.name for e in prof.events()}
    assert f"convext::conv{dims}d" in names
