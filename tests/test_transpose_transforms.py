"""Transforms of transposed convs (convext.conv_transpose1d/2d, ConvTranspose1d/2d
and the Lazy modules) against torch's own in float64: forward-mode AD (jvp,
jacfwd, dual tensors, forward-over-reverse), vmap without its fallback and
per-sample gradients, TorchScript (script, trace, save/load), FX and
__torch_function__. ONNX export is in test_onnx.py, compile/export in
test_transpose.py."""
import io
import warnings

import pytest
import torch
import torch.autograd.forward_ad as fwAD
from torch import nn
from torch.autograd import gradcheck
from torch.func import grad, jacfwd, jvp
from torch.overrides import TorchFunctionMode

import convext
from test_script import assert_runs_convext
from test_transpose import CONVEXT_T, TORCH_T, TCase, tcase_id
from test_vmap import (check_vmap, no_fallback, per_sample_grads,  # noqa: F401  (autouse fixture)
                       subsets, twin_models)

pytestmark = [
    pytest.mark.usefixtures("single_thread"),
    # torch's forward AD loads its jvp decompositions with torch.jit.script.
    pytest.mark.filterwarnings("ignore:`torch.jit.*` is deprecated:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning"),
]

CASES = [
    TCase(2, 2, 3, 4, (4, 3), (3, 2), stride=(2, 1), padding=1, output_padding=(1, 0)),
    TCase(2, 2, 4, 6, (3, 4), (2, 3), stride=2, groups=2),
    # output_padding >= stride (< dilation): the input is zero-padded first
    TCase(2, 1, 2, 3, (3, 3), (3, 2), dilation=3, output_padding=(2, 1), bias=False),
    TCase(2, None, 3, 3, (3, 4), (3, 3), stride=2, padding=1, output_padding=1, groups=3),
    TCase(1, 2, 4, 2, (5,), (4,), stride=3, padding=1, output_padding=2, groups=2),
    TCase(1, 1, 2, 3, (6,), (3,), dilation=2, output_padding=1),
]
TRANSPOSE_OPS = ("convext::conv1d_grad_input", "convext::conv2d_grad_input")


def assert_same(ours, theirs):
    torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-10)


def operands(case):
    return tuple(t for t in case.make(torch.float64) if t is not None)


def tangents(primals, seed=1):
    gen = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(p.shape, generator=gen, dtype=p.dtype) for p in primals)


def transpose_fn(case, fns=CONVEXT_T):
    def fn(*args):
        return fns[case.dims](*args, **case.conv_kwargs)
    return fn


# Forward-mode AD ---------------------------------------------------------------

@pytest.mark.parametrize("case", CASES, ids=tcase_id)
def test_jvp_matches_torch(case):
    primals = operands(case)
    tang = tangents(primals)
    out, tangent = jvp(transpose_fn(case), primals, tang)
    ref, ref_tangent = jvp(transpose_fn(case, TORCH_T), primals, tang)
    assert_same(out, ref)
    assert_same(tangent, ref_tangent)
    assert tangent.abs().sum() > 0


@pytest.mark.parametrize("grad_mode", [True, False], ids=["grad", "no_grad"])
@pytest.mark.parametrize("case", CASES[:1] + CASES[4:5], ids=tcase_id)
def test_dual_tensors_match_torch(case, grad_mode):
    primals = operands(case)
    tang = tangents(primals)
    results = []
    for fns in (CONVEXT_T, TORCH_T):
        with torch.set_grad_enabled(grad_mode), fwAD.dual_level():
            duals = [fwAD.make_dual(p, t) for p, t in zip(primals, tang)]
            results.append(fwAD.unpack_dual(transpose_fn(case, fns)(*duals)))
    assert_same(results[0].primal, results[1].primal)
    assert_same(results[0].tangent, results[1].tangent)


@pytest.mark.parametrize("case", CASES[2:3] + CASES[4:5], ids=tcase_id)
def test_jacfwd_matches_torch(case):
    primals = operands(case)
    argnums = tuple(range(len(primals)))
    ours = jacfwd(transpose_fn(case), argnums=argnums)(*primals)
    theirs = jacfwd(transpose_fn(case, TORCH_T), argnums=argnums)(*primals)
    for a, b in zip(ours, theirs):
        assert_same(a, b)


@pytest.mark.parametrize("case", CASES, ids=tcase_id)
def test_gradcheck_forward_ad(case):
    """The tangents against finite differences, not only against torch."""
    leaves = tuple(t.requires_grad_(True) for t in operands(case))
    assert gradcheck(transpose_fn(case), leaves, check_forward_ad=True, check_backward_ad=False,
                     check_batched_grad=False, check_undefined_grad=False)


@pytest.mark.parametrize("case", CASES[:1] + CASES[4:5], ids=tcase_id)
def test_hessian_vector_product_matches_torch(case):
    """Forward-over-reverse: jvp of the gradient (through the grad_weight and
    conv ops that are the transposed conv's backward)."""
    primals = operands(case)
    tang = tangents(primals, seed=2)

    def hvp(fns):
        def loss(*args):
            return transpose_fn(case, fns)(*args).sin().sum()
        argnums = tuple(range(len(primals)))
        return jvp(lambda *a: grad(loss, argnums=argnums)(*a), primals, tang)[1]

    for a, b in zip(hvp(CONVEXT_T), hvp(TORCH_T)):
        assert_same(a, b)
        assert a.abs().sum() > 0


# vmap and per-sample gradients ---------------------------------------------------

@pytest.mark.parametrize("batched", subsets(3), ids=lambda b: "".join("xwb"[i] for i in range(3)
                                                                        if b[i]))
@pytest.mark.parametrize("case", [c for c in CASES if c.bias], ids=tcase_id)
def test_vmap_matches_torch(case, batched):
    """Every combination of batched input/weight/bias through the grad_input
    op's batching rule (the no_fallback fixture makes a missing rule raise)."""
    x, w, b = case.make(torch.float64)
    check_vmap(transpose_fn(case), transpose_fn(case, TORCH_T), (x, w, b), batched)


class Decoder(nn.Module):
    """A small decoder: 2D upsampling (output_padding, groups), then 1D."""

    def __init__(self, t1d, t2d):
        super().__init__()
        self.up = nn.Sequential(
            t2d(3, 4, 3, stride=2, padding=1, output_padding=1), nn.Tanh(),
            t2d(4, 4, 2, stride=2, groups=2, bias=False), nn.Tanh())
        self.temporal = t1d(4, 3, 4, stride=2, padding=1, dilation=2, output_padding=1)

    def forward(self, x):
        return self.temporal(self.up(x).flatten(-2)).mean(-1)


def make_decoders():
    return twin_models(Decoder, (convext.ConvTranspose1d, convext.ConvTranspose2d),
                       (nn.ConvTranspose1d, nn.ConvTranspose2d))


def test_per_sample_gradients_match_torch():
    ours, theirs = make_decoders()
    x = torch.randn(4, 3, 3, 4, dtype=torch.float64)
    y = torch.tensor([0, 2, 1, 0])
    got, expected = per_sample_grads(ours, x, y), per_sample_grads(theirs, x, y)
    assert got.keys() == expected.keys()
    for name in got:
        assert got[name].shape == (4, *dict(ours.named_parameters())[name].shape)
        assert_same(got[name], expected[name])


# TorchScript, FX, __torch_function__ -------------------------------------------

def make_scriptable_decoder():
    """A Decoder whose first layer was a Lazy module, materialised by a call."""
    torch.manual_seed(0)
    model = Decoder(convext.ConvTranspose1d, convext.ConvTranspose2d)
    model.up[0] = convext.LazyConvTranspose2d(4, 3, stride=2, padding=1, output_padding=1)
    x = torch.randn(2, 3, 3, 4)
    with torch.no_grad():
        model(x)
    assert type(model.up[0]) is convext.ConvTranspose2d
    return model.eval(), x


def graph_kinds(module):
    """Every node kind of a TorchScript module's graph, nested blocks included."""
    graph = module.inlined_graph  # its nodes live as long as it does
    kinds, blocks = [], [graph]
    while blocks:
        for node in blocks.pop().nodes():
            kinds.append(node.kind())
            blocks.extend(node.blocks())
    return kinds


@pytest.mark.parametrize("unbatched", [False, True], ids=["batched", "unbatched"])
def test_script_module(unbatched):
    model, x = make_scriptable_decoder()
    x = x[0] if unbatched else x
    scripted = torch.jit.script(model)
    kinds = graph_kinds(scripted)
    assert kinds.count("convext::conv2d_grad_input") == 2
    assert kinds.count("convext::conv1d_grad_input") == 1
    with torch.no_grad():
        expected = model(x)
    assert_runs_convext(scripted, x, expected=expected, ops=TRANSPOSE_OPS)
    buffer = io.BytesIO()
    torch.jit.save(scripted, buffer)
    buffer.seek(0)
    assert_runs_convext(torch.jit.load(buffer), x, expected=expected, ops=TRANSPOSE_OPS)


def test_scripted_module_matches_torch_and_trains():
    ours, theirs = make_decoders()
    scripted = torch.jit.script(ours)
    x = torch.randn(2, 3, 3, 4, dtype=torch.float64, requires_grad=True)
    out, ref = scripted(x), theirs(x)
    assert_same(out, ref)
    grads = torch.autograd.grad(out.square().sum(), [x, *scripted.parameters()])
    ref_grads = torch.autograd.grad(ref.square().sum(), [x, *theirs.parameters()])
    for a, b in zip(grads, ref_grads):
        assert_same(a, b)


@pytest.mark.parametrize("dims", [1, 2])
def test_scripted_output_size_and_errors(dims):
    """forward(input, output_size) scripted as nn's, and bad input still
    raises with torch's text."""
    torch.manual_seed(0)
    ours = getattr(convext, f"ConvTranspose{dims}d")(2, 3, 3, stride=2, padding=1)
    theirs = getattr(nn, f"ConvTranspose{dims}d")(2, 3, 3, stride=2, padding=1)
    theirs.load_state_dict(ours.state_dict())
    scripted = torch.jit.script(ours)
    x = torch.randn(1, 2, *(4,) * dims)
    size = [8] * dims
    with torch.no_grad():
        torch.testing.assert_close(scripted(x, size), theirs(x, size), rtol=1e-5, atol=1e-5)
    with pytest.raises(Exception, match=r"expected input\[1, 3, .*\] to have 2 channels"):
        scripted(torch.randn(1, 3, *(4,) * dims))


def test_trace_module():
    """torch.jit.trace: the op's output size is a list of ints, so the trace
    keeps the traced call's size; it says so, and another size raises."""
    model, x = make_scriptable_decoder()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        traced = torch.jit.trace(model, (x,))
    messages = {str(w.message) for w in caught if isinstance(w.message, torch.jit.TracerWarning)}
    assert len(messages) == 3, messages
    assert all("the trace keeps this call's output size" in m for m in messages)
    assert graph_kinds(traced).count("convext::conv2d_grad_input") == 2
    with torch.no_grad():
        expected = model(x)
    assert_runs_convext(traced, x, expected=expected, ops=TRANSPOSE_OPS)
    with pytest.raises(RuntimeError):
        traced(torch.randn(2, 3, 5, 4))


def test_fx_symbolic_trace_records_one_call_per_layer():
    model, x = make_scriptable_decoder()

    class Functional(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.randn(3, 2, 2, 3))

        def forward(self, x):
            return convext.conv_transpose2d(x, self.w, None, 2, (0, 1), 1, 1, (1, 2))

    for module, x, counts in [(model, x, {convext.conv_transpose2d: 2,
                                          convext.conv_transpose1d: 1}),
                              (Functional(), torch.randn(2, 3, 4, 5),
                               {convext.conv_transpose2d: 1})]:
        graph_module = torch.fx.symbolic_trace(module)
        targets = [n.target for n in graph_module.graph.nodes if n.op == "call_function"]
        assert {fn: targets.count(fn) for fn in counts} == counts
        with torch.no_grad():
            expected = module(x)
        assert_runs_convext(graph_module, x, expected=expected, ops=TRANSPOSE_OPS[1:])


def test_torch_function_mode_sees_the_public_functions():
    seen = []

    class Record(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            seen.append(func)
            return func(*args, **(kwargs or {}))

    x1, w1 = torch.randn(2, 3, 5), torch.randn(3, 2, 3)
    x2, w2 = torch.randn(2, 3, 4, 5), torch.randn(3, 2, 3, 3)
    with Record():
        out1 = convext.conv_transpose1d(x1, w1, stride=2)
        out2 = convext.conv_transpose2d(x2, w2, output_padding=1, stride=2)
    assert seen[0] is convext.conv_transpose1d
    assert convext.conv_transpose2d in seen
    torch.testing.assert_close(out1, TORCH_T[1](x1, w1, stride=2), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out2, TORCH_T[2](x2, w2, output_padding=1, stride=2),
                               rtol=1e-5, atol=1e-5)
