"""torch.compile (fullgraph: a graph break raises) and torch.export of models
built from convext modules."""
import io

import pytest
import torch
from torch import nn

import convext

# Raised inside torch's own compile / export stack, not by convext.
pytestmark = [
    pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:`isinstance.treespec, LeafSpec.` is deprecated:FutureWarning"),
]


class SmallNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            convext.Conv2d(3, 8, 3, padding=1, padding_mode="reflect"), nn.ReLU(),
            convext.Conv2d(8, 8, 3, stride=2, padding=1, groups=8), nn.ReLU(),   # depthwise
            convext.Conv2d(8, 6, (2, 3), padding="same", dilation=(1, 2)), nn.ReLU())
        self.temporal = convext.Conv1d(6, 4, 4, padding="same", padding_mode="circular")

    def forward(self, x):
        y = self.body(x)
        return self.temporal(y.flatten(2))


def make_net():
    torch.manual_seed(0)
    return SmallNet()


def _grads(model, x, out):
    return torch.autograd.grad(out.square().sum(), [x] + list(model.parameters()))


def test_compile_fullgraph_forward_and_backward():
    torch._dynamo.reset()
    model = make_net()
    compiled = torch.compile(model, fullgraph=True)
    x = torch.randn(2, 3, 8, 10, requires_grad=True)
    eager_out, out = model(x), compiled(x)
    torch.testing.assert_close(out, eager_out, rtol=1e-5, atol=1e-5)
    for a, b in zip(_grads(model, x, out), _grads(model, x, eager_out)):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_compile_dynamic_shapes_functional():
    """Symbolic batch and spatial sizes go through the fake kernels."""
    torch._dynamo.reset()

    def fn(x, w, b):
        return convext.conv2d(x, w, b, stride=(2, 1), padding=1, dilation=(1, 2)).relu()

    compiled = torch.compile(fn, fullgraph=True, dynamic=True, backend="aot_eager")
    w, b = torch.randn(4, 3, 3, 3), torch.randn(4)
    for shape in [(2, 3, 9, 11), (3, 3, 12, 8), (1, 3, 7, 7)]:
        x = torch.randn(shape)
        torch.testing.assert_close(compiled(x, w, b), fn(x, w, b))


def test_compile_channels_last_training_step():
    torch._dynamo.reset()
    model = make_net().to(memory_format=torch.channels_last)
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    x = torch.randn(2, 3, 8, 10).contiguous(memory_format=torch.channels_last)
    x.requires_grad_(True)
    for a, b in zip(_grads(model, x, compiled(x)), _grads(model, x, model(x))):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def _call_targets(graph_module):
    return {str(n.target) for n in graph_module.graph.nodes if n.op == "call_function"}


def test_export_runs_and_matches():
    model = make_net().eval()
    x = torch.randn(2, 3, 8, 10)
    exported = torch.export.export(model, (x,))
    targets = _call_targets(exported.graph_module)
    assert "convext.conv2d.default" in targets and "convext.conv1d.default" in targets
    assert not any("convolution" in name or "aten.conv" in name for name in targets)
    torch.testing.assert_close(exported.module()(x), model(x))


def test_export_decompositions_and_save_load_keep_convext_ops():
    model = make_net().eval()
    x = torch.randn(2, 3, 8, 10)
    decomposed = torch.export.export(model, (x,)).run_decompositions()
    assert "convext.conv2d.default" in _call_targets(decomposed.graph_module)
    buffer = io.BytesIO()
    torch.export.save(decomposed, buffer)
    buffer.seek(0)
    loaded = torch.export.load(buffer)
    torch.testing.assert_close(loaded.module()(x), model(x))


def test_export_dynamic_batch():
    model = make_net().eval()
    batch = torch.export.Dim("batch", min=1, max=64)
    exported = torch.export.export(model, (torch.randn(2, 3, 8, 10),),
                                   dynamic_shapes=({0: batch},))
    x = torch.randn(5, 3, 8, 10)
    torch.testing.assert_close(exported.module()(x), model(x))


@pytest.mark.parametrize("dims", [1, 2])
def test_export_functional_with_same_padding(dims):
    class Fn(nn.Module):
        def forward(self, x, w):
            return getattr(convext, f"conv{dims}d")(x, w, padding="same", dilation=3)

    x, w = torch.randn(1, 2, *(9,) * dims), torch.randn(3, 2, *(4,) * dims)
    exported = torch.export.export(Fn(), (x, w))
    torch.testing.assert_close(exported.module()(x, w), Fn()(x, w))
