"""torch.func.vmap of every convext op through its own batching rule, against
a loop of torch's convolution in float64 (vmap's fallback is switched off, so
an op without a rule raises); and per-sample gradients, vmap(grad(f)) with
functional_call, as Opacus and the torch.func tutorials compute them."""
import itertools

import pytest
import torch
from torch import nn
from torch.autograd import gradcheck
from torch.func import functional_call, grad, jacrev, vmap

import convext
from conftest import CONVEXT_FN, TORCH_FN, ConvCase, case_id, no_warnings_about_same

ops = torch.ops.convext
B = 3  # the vmapped size

CASES = [
    ConvCase(2, 2, 4, 6, (5, 6), (3, 2), stride=(1, 2), padding=1, dilation=(2, 1), groups=2),
    ConvCase(2, 1, 3, 3, (5, 5), (3, 3), padding="same", groups=3),                   # depthwise
    ConvCase(2, None, 2, 3, (4, 5), (2, 2), stride=2),                                # unbatched
    ConvCase(1, 2, 6, 4, (9,), (3,), stride=2, padding=1, dilation=2, groups=2),
    ConvCase(1, 1, 2, 3, (8,), (4,), padding="same", bias=False),
]


def assert_same(ours, theirs):
    torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-10)


@pytest.fixture(autouse=True)
def no_fallback():
    """vmap's per-sample fallback (a loop, with a warning printed from C++)
    is switched off, so an op without its own batching rule raises."""
    before = torch._C._functorch._is_vmap_fallback_enabled()
    torch._C._functorch._set_vmap_fallback_enabled(False)
    yield
    torch._C._functorch._set_vmap_fallback_enabled(before)


@torch.library.custom_op("convext_tests::no_vmap_rule", mutates_args=())
def _no_vmap_rule(x: torch.Tensor) -> torch.Tensor:
    return x.clone()


def test_an_op_without_a_rule_raises_here():
    """The fixture above trips: no test passes through the fallback."""
    with pytest.raises(RuntimeError, match="hit the vmap fallback"):
        vmap(_no_vmap_rule)(torch.randn(3, 2))


def stacked(t, gen):
    """B random samples shaped like t, vmapped along dim 1 (not 0, to
    exercise the rules' movedim), with t's memory format per sample."""
    out = torch.randn(B, *t.shape, generator=gen, dtype=t.dtype)
    return out.movedim(0, 1)


def batched_operands(args, batched, gen):
    """For each operand: (value for vmap, in_dim, sample(i) for the loop)."""
    result = []
    for t, on in zip(args, batched):
        if t is None or not on:
            result.append((t, None, lambda i, t=t: t))
        else:
            s = stacked(t, gen)
            result.append((s, 1, lambda i, s=s: s.select(1, i)))
    return result


def check_vmap(fn, ref_fn, args, batched, seed=0):
    ops_ = batched_operands(args, batched, torch.Generator().manual_seed(seed))
    values = [v for v, _, _ in ops_]
    in_dims = tuple(d for _, d, _ in ops_)
    out = vmap(fn, in_dims=in_dims)(*values)
    ref = torch.stack([ref_fn(*(sample(i) for _, _, sample in ops_)) for i in range(B)])
    assert_same(out, ref)


def subsets(n):
    return [c for c in itertools.product((True, False), repeat=n) if any(c)]


@pytest.mark.parametrize("batched", subsets(3), ids=lambda b: "".join("xwb"[i] for i in range(3)
                                                                        if b[i]))
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_vmap_conv_matches_torch(case, batched):
    x, w, b = case.make(torch.float64)
    if b is None and batched == (False, False, True):
        pytest.skip("no bias to batch")

    def conv(fns):
        def fn(*args):
            with no_warnings_about_same():
                return fns[case.dims](*args, **case.conv_kwargs)
        return fn

    check_vmap(conv(CONVEXT_FN), conv(TORCH_FN), (x, w, b), batched)


def test_vmap_channels_last():
    case = CASES[0]
    x, w, b = case.make(torch.float64)
    xs = torch.randn(B, *x.shape, dtype=torch.float64)
    xs_cl = torch.stack([s.contiguous(memory_format=torch.channels_last) for s in xs])
    out = vmap(lambda s: convext.conv2d(s, w, b, **case.conv_kwargs))(xs_cl)
    assert_same(out, torch.stack([TORCH_FN[2](s, w, b, **case.conv_kwargs) for s in xs]))


# torch's reference for each backward op (ATen's convolution_backward).
def torch_grad_input(dims):
    fn = getattr(torch.nn.grad, f"conv{dims}d_input")

    def ref(go, w, size, stride, padding, dilation, groups):
        return fn(size, w, go, stride, padding, dilation, groups)
    return ref


def torch_grad_weight(dims):
    fn = getattr(torch.nn.grad, f"conv{dims}d_weight")

    def ref(go, x, size, stride, padding, dilation, groups):
        return fn(x, size, go, stride, padding, dilation, groups)
    return ref


NUMERIC_CASES = [c for c in CASES if not isinstance(c.padding, str) and c.N is not None]


@pytest.mark.parametrize("batched", subsets(2), ids=lambda b: "".join("ab"[i] for i in range(2)
                                                                        if b[i]))
@pytest.mark.parametrize("which", ["grad_input", "grad_weight"])
@pytest.mark.parametrize("case", NUMERIC_CASES, ids=case_id)
def test_vmap_backward_ops_match_torch(case, which, batched):
    x, w, _ = case.make(torch.float64)
    go = torch.randn(CONVEXT_FN[case.dims](x, w, None, **case.conv_kwargs).shape,
                     dtype=torch.float64)
    op = getattr(ops, f"conv{case.dims}d_{which}")
    other, size, ref = ((w, list(x.shape), torch_grad_input(case.dims)) if which == "grad_input"
                        else (x, list(w.shape), torch_grad_weight(case.dims)))
    params = case.op_params()
    check_vmap(lambda a, b: op(a, b, size, *params), lambda a, b: ref(a, b, size, *params),
               (go, other), batched)


@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (2, 3, 7), (3, 2)])
def test_vmap_grad_bias_matches_torch(shape):
    go = torch.randn(shape, dtype=torch.float64)
    check_vmap(ops.conv_grad_bias, lambda g: g.sum([d for d in range(g.dim()) if d != 1]),
               (go,), (True,))


def test_nested_vmap():
    """Two vmapped dims: an ensemble of weights over a batch of inputs."""
    x = torch.randn(2, 4, 2, 3, 6, 5, dtype=torch.float64)  # (ensemble E, samples S, N, C, H, W)
    w = torch.randn(2, 4, 3, 3, 2, dtype=torch.float64)     # (E, OC, C, KH, KW)
    out = vmap(vmap(lambda xi, wi: convext.conv2d(xi, wi, padding=1), in_dims=(0, None)))(x, w)
    ref = torch.stack([torch.stack([TORCH_FN[2](x[e, s], w[e], padding=1) for s in range(4)])
                       for e in range(2)])
    assert_same(out, ref)


def test_gradcheck_batched_grad():
    """gradcheck's check_batched_grad vmaps the backward ops over grad_output."""
    case = CASES[0]
    inputs = [t.requires_grad_(True) for t in case.make(torch.float64)]
    assert gradcheck(lambda *a: convext.conv2d(*a, **case.conv_kwargs), inputs,
                     check_batched_grad=True)


def test_jacrev_matches_torch():
    case = CASES[3]
    x, w, b = case.make(torch.float64)
    for argnum in range(3):
        ours = jacrev(lambda *a: CONVEXT_FN[1](*a, **case.conv_kwargs), argnums=argnum)(x, w, b)
        theirs = jacrev(lambda *a: TORCH_FN[1](*a, **case.conv_kwargs), argnums=argnum)(x, w, b)
        assert_same(ours, theirs)


class Net(nn.Module):
    """Every kind of conv layer: strided, grouped, dilated 'same' (asymmetric
    padding), depthwise, 1D, with and without bias."""

    def __init__(self, conv1d, conv2d):
        super().__init__()
        self.features = nn.Sequential(
            conv2d(3, 6, 3, stride=2, padding=1), nn.Tanh(),
            conv2d(6, 6, (2, 3), padding="same", dilation=(2, 1), groups=2), nn.Tanh(),
            conv2d(6, 6, 3, padding=1, groups=6, bias=False), nn.Tanh())
        self.temporal = conv1d(6, 4, 3, padding=2, dilation=2)
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        y = self.temporal(self.features(x).flatten(2))
        return self.head(y.mean(-1))


def twin_models(net, ours, theirs):
    """net(*ours) and net(*theirs) in float64 with the same parameters."""
    torch.manual_seed(0)
    a, b = net(*ours).double(), net(*theirs).double()
    b.load_state_dict(a.state_dict())
    return a, b


def make_nets():
    return twin_models(Net, (convext.Conv1d, convext.Conv2d), (nn.Conv1d, nn.Conv2d))


def per_sample_grads(model, x, y):
    params = {k: v.detach() for k, v in model.named_parameters()}

    def sample_loss(p, xi, yi):
        out = functional_call(model, p, (xi.unsqueeze(0),))
        return nn.functional.cross_entropy(out, yi.unsqueeze(0))

    with no_warnings_about_same():
        return vmap(grad(sample_loss), in_dims=(None, 0, 0))(params, x, y)


def test_per_sample_gradients_match_torch():
    ours, theirs = make_nets()
    x = torch.randn(5, 3, 8, 7, dtype=torch.float64)
    y = torch.tensor([0, 1, 1, 0, 1])
    got, expected = per_sample_grads(ours, x, y), per_sample_grads(theirs, x, y)
    assert got.keys() == expected.keys()
    for name in got:
        assert got[name].shape == (5, *dict(ours.named_parameters())[name].shape)
        assert_same(got[name], expected[name])
    # And against a plain loop of autograd over the samples.
    for i in range(5):
        ours.zero_grad()
        with no_warnings_about_same():
            nn.functional.cross_entropy(ours(x[i:i + 1]), y[i:i + 1]).backward()
        for name, p in ours.named_parameters():
            assert_same(got[name][i], p.grad)
