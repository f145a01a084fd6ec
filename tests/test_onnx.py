"""torch.onnx.export(model, args, dynamo=True) of models using convext:
standard ONNX Conv / ConvTranspose nodes, no argument needed, and
onnxruntime's results match eager convext and torch's own layers."""
import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import convext
from conftest import no_warnings_about_same

onnx = pytest.importorskip("onnx", reason="needs onnx (pip install convext[test])")
pytest.importorskip("onnxscript", reason="needs onnxscript (pip install convext[test])")
ort = pytest.importorskip("onnxruntime", reason="needs onnxruntime (pip install convext[test])")

pytestmark = [
    # Raised inside torch's own export stack, not by convext.
    pytest.mark.filterwarnings("ignore:`isinstance.treespec, LeafSpec.` is deprecated:FutureWarning"),
    pytest.mark.filterwarnings("ignore:.*is deprecated:DeprecationWarning"),
]
ops = torch.ops.convext


def export(model, *args):
    return torch.onnx.export(model.eval(), args, dynamo=True, verbose=False).model_proto


def run_onnx(proto, *args):
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    feeds = {i.name: a.numpy() for i, a in zip(session.get_inputs(), args)}
    return [torch.from_numpy(out) for out in session.run(None, feeds)]


def op_types(proto):
    return [node.op_type for node in proto.graph.node]


def assert_standard(proto, conv=0, conv_transpose=0):
    """Only default-domain ONNX ops, with the expected number of convolutions."""
    for node in proto.graph.node:
        assert node.domain in ("", "ai.onnx"), f"non-standard node {node.domain}::{node.op_type}"
    types = op_types(proto)
    assert types.count("Conv") == conv, types
    assert types.count("ConvTranspose") == conv_transpose, types


def assert_close(ours, theirs):
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)


class Net(nn.Module):
    """1D and 2D; stride, dilation, groups, depthwise, asymmetric 'same'
    (even kernels, odd dilated spans), a padding mode, with and without bias."""

    def __init__(self, conv1d=nn.Conv1d, conv2d=nn.Conv2d):
        super().__init__()
        self.body = nn.Sequential(
            conv2d(3, 8, 3, stride=(2, 1), padding=1, padding_mode="reflect"), nn.ReLU(),
            conv2d(8, 8, (2, 4), padding="same", dilation=(1, 3), groups=2), nn.ReLU(),
            conv2d(8, 8, 3, padding=2, dilation=2, groups=8, bias=False), nn.ReLU())
        self.temporal = nn.Sequential(
            conv1d(8, 6, 4, padding="same"), nn.ReLU(),
            conv1d(6, 4, 3, stride=3, padding=1, dilation=2, groups=2))

    def forward(self, x):
        return self.temporal(self.body(x).flatten(2))


def test_converted_model_exports_standard_conv_nodes():
    torch.manual_seed(0)
    reference = Net().eval()
    model = convext.convert(Net().eval())
    model.load_state_dict(reference.state_dict())
    assert isinstance(model.body[0], convext.Conv2d)
    x = torch.randn(2, 3, 11, 9)
    proto = export(model, x)
    assert_standard(proto, conv=5)
    (out,) = run_onnx(proto, x)
    with torch.no_grad(), no_warnings_about_same():
        assert_close(out, model(x))
        assert_close(out, reference(x))


class Functional(nn.Module):
    def __init__(self, fn, weight, bias, **kwargs):
        super().__init__()
        self.fn, self.kwargs = fn, kwargs
        self.weight = nn.Parameter(weight)
        self.bias = None if bias is None else nn.Parameter(bias)

    def forward(self, x):
        return self.fn(x, self.weight, self.bias, **self.kwargs)


@pytest.mark.parametrize("dims,bias,kwargs", [
    (1, True, dict(stride=2, padding=3, dilation=3, groups=2)),
    (1, False, dict(padding="same", dilation=1)),                   # kernel 4: asymmetric
    (2, False, dict(stride=(1, 3), padding=(2, 0), dilation=(2, 1), groups=4)),
    (2, True, dict(padding="same", dilation=(1, 3))),   # kernel (4, 3), dilation 3: asymmetric
    (2, True, dict(padding="valid")),
], ids=["1d-strided-grouped", "1d-same-asym-nobias", "2d-grouped-nobias", "2d-same-asym",
        "2d-valid"])
def test_functional_conv(dims, bias, kwargs):
    torch.manual_seed(0)
    groups = kwargs.get("groups", 1)
    x = torch.randn(2, 4, *(13, 10)[:dims])
    w = torch.randn(8, 4 // groups, *(4, 3)[:dims])
    b = torch.randn(8) if bias else None
    fns = {1: (convext.conv1d, F.conv1d), 2: (convext.conv2d, F.conv2d)}[dims]
    proto = export(Functional(fns[0], w, b, **kwargs), x)
    assert_standard(proto, conv=1)
    (out,) = run_onnx(proto, x)
    with no_warnings_about_same():
        assert_close(out, fns[1](x, w, b, **kwargs))


@pytest.mark.parametrize("dims,bias,kwargs", [
    (2, True, dict(stride=(2, 3), padding=(1, 0), output_padding=(1, 2), dilation=(2, 1),
                   groups=2)),
    (2, False, dict(padding=1)),
    (1, True, dict(stride=4, padding=2, output_padding=3, groups=3)),
    # output_padding >= stride (< dilation): zero-padded input, then ConvTranspose
    (1, False, dict(dilation=3, output_padding=2)),
], ids=["2d-strided-grouped-dilated", "2d-plain-nobias", "1d-output-padding",
        "1d-output-padding-over-stride"])
def test_conv_transpose_exports_as_conv_transpose(dims, bias, kwargs):
    """convext.conv_transpose*d runs on the grad_input op: standard ConvTranspose."""
    torch.manual_seed(0)
    groups = kwargs.get("groups", 1)
    x = torch.randn(2, 6, *(5, 4)[:dims])
    w, b = torch.randn(6, 2, *(3, 2)[:dims]), torch.randn(2 * groups) if bias else None
    fns = {1: (convext.conv_transpose1d, F.conv_transpose1d),
           2: (convext.conv_transpose2d, F.conv_transpose2d)}[dims]
    proto = export(Functional(fns[0], w, b, **kwargs), x)
    assert_standard(proto, conv_transpose=1)
    (out,) = run_onnx(proto, x)
    assert_close(out, fns[1](x, w, b, **kwargs))


class Decoder(nn.Module):
    """Upsampling layers as in U-Net / DCGAN / HiFi-GAN decoders."""

    def __init__(self):
        super().__init__()
        self.up = nn.Sequential(
            nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1), nn.ReLU(),
            nn.ConvTranspose2d(6, 6, 2, stride=2, groups=3, bias=False), nn.ReLU())
        self.temporal = nn.LazyConvTranspose1d(3, 4, stride=2, padding=1)

    def forward(self, x):
        return self.temporal(self.up(x).flatten(2))


def test_converted_decoder_exports_conv_transpose_nodes():
    torch.manual_seed(0)
    x = torch.randn(2, 4, 3, 5)
    reference = Decoder().eval()
    with torch.no_grad():
        reference(x)  # materialises the lazy layer
    model = convext.convert(copy.deepcopy(reference))
    assert isinstance(model.temporal, convext.ConvTranspose1d)
    proto = export(model, x)
    assert_standard(proto, conv_transpose=3)
    (out,) = run_onnx(proto, x)
    with torch.no_grad():
        assert_close(out, reference(x))
        assert_close(out, model(x))


def test_grad_weight_is_not_exportable():
    """A training-only op raises, rather than exporting something else."""
    class GradWeight(nn.Module):
        def forward(self, go, x):
            return ops.conv2d_grad_weight(go, x, [4, 3, 3, 3], [1, 1], [0, 0], [1, 1], 1)

    with pytest.raises(Exception) as info:
        export(GradWeight(), torch.randn(2, 4, 3, 3), torch.randn(2, 3, 5, 5))
    assert "convext::conv2d_grad_weight (a weight gradient" in "".join(
        str(e) for e in _chain(info.value))


def _chain(error):
    while error is not None:
        yield error
        error = error.__cause__ or error.__context__


def test_dynamic_shapes():
    """Batch and height left symbolic: one ONNX model serves other sizes."""
    torch.manual_seed(0)
    model = nn.Sequential(convext.Conv2d(3, 4, (2, 3), padding="same"), nn.ReLU(),
                          convext.Conv2d(4, 2, 3, stride=2)).eval()
    dims = {0: torch.export.Dim("batch"), 2: torch.export.Dim("height", min=4, max=64)}
    proto = torch.onnx.export(model, (torch.randn(2, 3, 9, 8),), dynamo=True, verbose=False,
                              dynamic_shapes=(dims,)).model_proto
    assert_standard(proto, conv=2)
    for shape in [(2, 3, 9, 8), (5, 3, 13, 8)]:
        x = torch.randn(shape)
        (out,) = run_onnx(proto, x)
        with torch.no_grad():
            assert_close(out, model(x))
