"""Forward-mode AD through every convext op: torch.func.jvp / jacfwd and
torch.autograd.forward_ad against torch's own convolution (float64), the
tangents checked numerically by gradcheck(check_forward_ad=True), and
forward-over-reverse (Hessian-vector products) through the backward ops."""
import itertools

import pytest
import torch
import torch.autograd.forward_ad as fwAD
from torch.autograd import gradcheck, gradgradcheck
from torch.func import grad, hessian, jacfwd, jacrev, jvp

from conftest import CONVEXT_FN, TORCH_FN, ConvCase, case_id, no_warnings_about_same

ops = torch.ops.convext
pytestmark = [
    pytest.mark.usefixtures("single_thread"),
    # torch's forward AD loads its jvp decompositions with torch.jit.script.
    pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning"),
]

CASES = [
    ConvCase(2, 2, 2, 3, (5, 4), (3, 2), stride=(2, 1), padding=(1, 0), dilation=(1, 2)),
    ConvCase(2, 1, 4, 4, (5, 6), (2, 3), padding="same", dilation=(2, 1), groups=2),
    ConvCase(2, 2, 3, 3, (5, 5), (3, 3), padding=1, groups=3, bias=False),           # depthwise
    ConvCase(2, None, 2, 2, (4, 4), (3, 3), padding=1),                               # unbatched
    ConvCase(1, 2, 2, 4, (9,), (3,), stride=3, padding=2, groups=2),
    ConvCase(1, 1, 3, 2, (8,), (4,), padding="same", dilation=2),
]
CHANNELS_LAST = ConvCase(2, 2, 3, 4, (5, 4), (2, 2), padding=1)


def assert_same(ours, theirs):
    torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-10)


def operands(case, channels_last=False):
    x, w, b = case.make(torch.float64)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return [t for t in (x, w, b) if t is not None]


def tangents(primals, seed=1):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(p.shape, generator=gen, dtype=p.dtype) for p in primals]


def conv_fn(case, fns=CONVEXT_FN):
    def fn(*args):
        with no_warnings_about_same():
            return fns[case.dims](*args, **case.conv_kwargs)
    return fn


@pytest.mark.parametrize("case", CASES + [CHANNELS_LAST], ids=case_id)
def test_jvp_matches_torch(case):
    primals = operands(case, channels_last=case is CHANNELS_LAST)
    ts = tangents(primals)
    out, tangent = jvp(conv_fn(case), tuple(primals), tuple(ts))
    ref_out, ref_tangent = jvp(conv_fn(case, TORCH_FN), tuple(primals), tuple(ts))
    assert tangent.abs().max() > 0
    assert_same(out, ref_out)
    assert_same(tangent, ref_tangent)


@pytest.mark.parametrize("case", [CASES[0], CASES[4]], ids=case_id)
def test_jvp_of_the_op_called_directly(case):
    """torch.ops.convext.conv*, not through convext.conv*: the same tangents."""
    op = getattr(ops, f"conv{case.dims}d")
    params = case.op_params()
    primals = operands(case)
    ts = tangents(primals)
    _, tangent = jvp(lambda *args: op(*args, *params), tuple(primals), tuple(ts))
    _, ref_tangent = jvp(lambda *args: TORCH_FN[case.dims](*args, *params), tuple(primals),
                         tuple(ts))
    assert_same(tangent, ref_tangent)


@pytest.mark.parametrize("grad_mode", [True, False], ids=["grad", "no_grad"])
@pytest.mark.parametrize("case", CASES[:2] + CASES[4:5], ids=case_id)
def test_forward_ad_matches_torch(case, grad_mode):
    """Dual tensors, with a tangent on every subset of the operands; forward
    AD works under no_grad too, as it does for torch's conv."""
    primals = operands(case)
    ts = tangents(primals)
    for which in itertools.chain.from_iterable(
            itertools.combinations(range(len(primals)), k) for k in range(1, len(primals) + 1)):
        results = []
        for fns in (CONVEXT_FN, TORCH_FN):
            with fwAD.dual_level(), torch.set_grad_enabled(grad_mode):
                args = [fwAD.make_dual(p, t) if i in which else p
                        for i, (p, t) in enumerate(zip(primals, ts))]
                results.append(fwAD.unpack_dual(conv_fn(case, fns)(*args)))
        (out, tangent), (ref_out, ref_tangent) = results
        assert tangent is not None, f"tangent dropped for operands {which}"
        assert_same(out, ref_out)
        assert_same(tangent, ref_tangent)


@pytest.mark.parametrize("case", CASES[1:2] + CASES[4:5], ids=case_id)
def test_jacfwd_matches_jacrev_and_torch(case):
    primals = operands(case)
    argnums = tuple(range(len(primals)))
    ours = jacfwd(conv_fn(case), argnums=argnums)(*primals)
    for other in (jacrev(conv_fn(case), argnums=argnums)(*primals),
                  jacfwd(conv_fn(case, TORCH_FN), argnums=argnums)(*primals)):
        for a, b in zip(ours, other):
            assert_same(a, b)


@pytest.mark.parametrize("case", CASES + [CHANNELS_LAST], ids=case_id)
def test_gradcheck_forward_ad(case):
    """Tangents against finite differences, also vmapped over the tangents
    (check_batched_forward_grad); forward-over-reverse by gradgradcheck."""
    inputs = [t.requires_grad_(True) for t in operands(case, channels_last=case is CHANNELS_LAST)]
    assert gradcheck(conv_fn(case), inputs, check_forward_ad=True, check_backward_ad=False,
                     check_undefined_grad=False, check_batched_forward_grad=True)
    assert gradgradcheck(conv_fn(case), inputs, check_fwd_over_rev=True)


# The backward ops called directly: (op, a, b, size) on the operands of a conv.
def backward_op_args(case, which):
    x, w, _ = case.make(torch.float64)
    go = torch.randn(CONVEXT_FN[case.dims](x, w, None, **case.conv_kwargs).shape,
                     dtype=torch.float64)
    if which == "grad_input":
        return go, w, list(x.shape)
    return go, x, list(w.shape)


@pytest.mark.parametrize("which", ["grad_input", "grad_weight"])
@pytest.mark.parametrize("case", [CASES[0], CASES[2], CASES[4]], ids=case_id)
def test_backward_ops_forward_ad(case, which):
    go, other, size = backward_op_args(case, which)
    op = getattr(ops, f"conv{case.dims}d_{which}")
    params = case.op_params()

    def fn(a, b):
        return op(a, b, size, *params)

    inputs = (go.requires_grad_(True), other.requires_grad_(True))
    assert gradcheck(fn, inputs, check_forward_ad=True, check_backward_ad=False,
                     check_undefined_grad=False, check_batched_forward_grad=True)
    assert gradgradcheck(fn, inputs, check_fwd_over_rev=True)
    # Linear in each argument: the tangent is the op on one tangent at a time.
    d_go, d_other = tangents([go, other])
    _, tangent = jvp(fn, (go.detach(), other.detach()), (d_go, d_other))
    assert_same(tangent, fn(d_go, other.detach()) + fn(go.detach(), d_other))


def test_grad_bias_forward_ad():
    go = torch.randn(2, 3, 4, 5, dtype=torch.float64, requires_grad=True)
    assert gradcheck(ops.conv_grad_bias, (go,), check_forward_ad=True,
                     check_batched_forward_grad=True)
    assert gradgradcheck(ops.conv_grad_bias, (go,), check_fwd_over_rev=True)


def loss(case, fns=CONVEXT_FN):
    conv = conv_fn(case, fns)

    def f(*args):
        return conv(*args).tanh().square().sum()
    return f


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_hessian_vector_product_matches_torch(case):
    """Forward over reverse, both ways torch offers: torch.func.jvp of
    torch.func.grad, and dual tensors through autograd.grad(create_graph)."""
    primals = operands(case)
    ts = tangents(primals)
    argnums = tuple(range(len(primals)))
    results = []
    for fns in (CONVEXT_FN, TORCH_FN):
        _, hvp = jvp(grad(loss(case, fns), argnums=argnums), tuple(primals), tuple(ts))
        with fwAD.dual_level():
            leaves = [fwAD.make_dual(p, t).requires_grad_(True) for p, t in zip(primals, ts)]
            grads = torch.autograd.grad(loss(case, fns)(*leaves), leaves, create_graph=True)
            dual_hvp = [fwAD.unpack_dual(g).tangent for g in grads]
        results.append((hvp, dual_hvp))
    (ours, ours_dual), (theirs, theirs_dual) = results
    for a, b, c, d in zip(ours, ours_dual, theirs, theirs_dual):
        assert a.abs().max() > 0
        assert_same(a, c)
        assert_same(b, d)


def test_hessian_matches_torch():
    """torch.func.hessian is jacfwd(jacrev): forward AD over vmapped backward ops."""
    case = CASES[1]
    x, w, b = operands(case)
    ours = hessian(loss(case), argnums=1)(x, w, b)
    theirs = hessian(loss(case, TORCH_FN), argnums=1)(x, w, b)
    assert_same(ours, theirs)
