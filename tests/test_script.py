"""TorchScript (torch.jit.script, torch.jit.trace, save/load) of convext
modules and torch.fx.symbolic_trace of models using them and the functional
API: the result calls convext's ops, never torch's convolution, and matches
eager; 'same' padding traces without warnings."""
import io
import warnings

import pytest
import torch
from torch import nn

import convext
from conftest import no_warnings_about_same

pytestmark = [
    pytest.mark.filterwarnings("ignore:`torch.jit.*` is deprecated:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning"),
]


class Net(nn.Module):
    """Every module option that changes the forward: strides, dilation,
    groups, 'same' with an asymmetric extra row ('same' + even kernel),
    'valid', padding modes, no bias, 1D after 2D."""

    def __init__(self, conv1d=convext.Conv1d, conv2d=convext.Conv2d):
        super().__init__()
        self.body = nn.Sequential(
            conv2d(3, 6, 3, stride=(2, 1), padding=1, padding_mode="reflect"), nn.ReLU(),
            conv2d(6, 6, (2, 4), padding="same", dilation=(1, 3), groups=2), nn.ReLU(),
            conv2d(6, 6, 3, padding="valid", groups=6, bias=False), nn.ReLU())
        self.temporal = nn.Sequential(
            conv1d(6, 4, 4, padding="same", padding_mode="circular"), nn.ReLU(),
            conv1d(4, 4, 3, stride=2, padding=2, dilation=2))

    def forward(self, x):
        return self.temporal(self.body(x).flatten(-2))


def make_net():
    torch.manual_seed(0)
    return Net().eval()


def run_ops(fn, *args):
    """fn(*args) and the names of the ops the profiler saw it run."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        out = fn(*args)
    return out, {event.name for event in prof.events()}


def assert_runs_convext(fn, *args, expected, ops=("convext::conv1d", "convext::conv2d")):
    with torch.no_grad(), no_warnings_about_same():
        out, names = run_ops(fn, *args)
    assert set(ops) <= names
    assert not [n for n in names if n.startswith("aten::") and "conv" in n], names
    torch.testing.assert_close(out, expected, rtol=0, atol=0)


def test_convext_check_trips_on_torch_conv():
    model = Net(nn.Conv1d, nn.Conv2d).eval()
    x = torch.randn(2, 3, 10, 9)
    with torch.no_grad(), no_warnings_about_same():
        expected = model(x)
    with pytest.raises(AssertionError):
        assert_runs_convext(model, x, expected=expected)


def assert_no_warnings(fn):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fn()
    ours = [str(w.message) for w in caught if "is deprecated" not in str(w.message)]
    assert ours == []
    return result


@pytest.mark.parametrize("unbatched", [False, True], ids=["batched", "unbatched"])
def test_script_module(unbatched):
    model = make_net()
    x = torch.randn(2, 3, 10, 9)[0 if unbatched else slice(None)]
    scripted = assert_no_warnings(lambda: torch.jit.script(model))
    kinds = {node.kind() for node in scripted.inlined_graph.nodes()}
    assert {"convext::conv1d", "convext::conv2d"} <= kinds
    with torch.no_grad():
        expected = model(x)
    assert_runs_convext(scripted, x, expected=expected)
    # Saved and loaded: the ops are found by name in the new process's registry.
    buffer = io.BytesIO()
    torch.jit.save(scripted, buffer)
    buffer.seek(0)
    assert_runs_convext(torch.jit.load(buffer), x, expected=expected)


def test_scripted_module_matches_torch_and_trains():
    model = make_net()
    reference = Net(nn.Conv1d, nn.Conv2d).eval()
    reference.load_state_dict(model.state_dict())
    scripted = torch.jit.script(model)
    x = torch.randn(2, 3, 10, 9, dtype=torch.float64, requires_grad=True)
    scripted.double()
    reference.double()
    with no_warnings_about_same():
        out, ref = scripted(x), reference(x)
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)
    grads = torch.autograd.grad(out.square().sum(), [x, *scripted.parameters()])
    ref_grads = torch.autograd.grad(ref.square().sum(), [x, *reference.parameters()])
    for a, b in zip(grads, ref_grads):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_script_errors_on_bad_input():
    """Scripted, the module still raises (TorchScript's error type) with torch's text."""
    scripted = torch.jit.script(convext.Conv2d(3, 4, 3))
    with pytest.raises(Exception, match=r"Expected 3D \(unbatched\) or 4D \(batched\) input"):
        scripted(torch.randn(3, 5))


def test_trace_module_same_padding_without_warnings():
    model = make_net()
    x = torch.randn(2, 3, 10, 9)
    traced = assert_no_warnings(lambda: torch.jit.trace(model, (x,)))
    kinds = [node.kind() for node in traced.inlined_graph.nodes()]
    assert kinds.count("convext::conv2d") == 3 and kinds.count("convext::conv1d") == 2
    with torch.no_grad():
        expected = model(x)
    assert_runs_convext(traced, x, expected=expected)
    # The trace is not specialised to this input size.
    x2 = torch.randn(1, 3, 12, 11)
    with torch.no_grad():
        assert_runs_convext(traced, x2, expected=model(x2))


def test_trace_functional_same_padding_follows_the_kernel():
    """Traced with the weight as an input, 'same' padding is computed from the
    traced sizes: another kernel size still gets its own (asymmetric) padding."""
    def fn(x, w):
        return convext.conv2d(x, w, padding="same")

    x = torch.randn(1, 2, 7, 6)
    traced = assert_no_warnings(
        lambda: torch.jit.trace(fn, (x, torch.randn(3, 2, 3, 3))))
    for kernel in [(3, 3), (2, 4), (4, 1)]:
        w = torch.randn(3, 2, *kernel)
        with no_warnings_about_same():
            expected = torch.nn.functional.conv2d(x, w, padding="same")
        assert_runs_convext(traced, x, w, expected=fn(x, w), ops=["convext::conv2d"])
        torch.testing.assert_close(traced(x, w), expected, rtol=1e-5, atol=1e-5)


def test_fx_symbolic_trace_module():
    model = make_net()
    graph_module = assert_no_warnings(lambda: torch.fx.symbolic_trace(model))
    targets = [node.target for node in graph_module.graph.nodes if node.op == "call_function"]
    assert targets.count(convext.conv2d) == 3 and targets.count(convext.conv1d) == 2
    x = torch.randn(2, 3, 10, 9)
    with torch.no_grad():
        expected = model(x)
    assert_runs_convext(graph_module, x, expected=expected)


def test_fx_symbolic_trace_functional():
    class Functional(nn.Module):
        def __init__(self):
            super().__init__()
            self.w2 = nn.Parameter(torch.randn(4, 3, 2, 2))
            self.w1 = nn.Parameter(torch.randn(5, 4, 3))

        def forward(self, x):
            y = convext.conv2d(x, self.w2, None, 1, "same", (1, 2))
            return convext.conv1d(y.flatten(2), self.w1, stride=2, padding=1)

    model = Functional()
    graph_module = torch.fx.symbolic_trace(model)
    targets = [node.target for node in graph_module.graph.nodes if node.op == "call_function"]
    assert convext.conv2d in targets and convext.conv1d in targets
    x = torch.randn(2, 3, 6, 7)
    with torch.no_grad():
        expected = model(x)
    assert_runs_convext(graph_module, x, expected=expected)
