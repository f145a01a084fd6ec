"""convext.convert: swaps every plain nn.Conv1d / Conv2d / ConvTranspose1d /
ConvTranspose2d (and their Lazy forms) in place, keeping parameters, buffers,
hooks, parametrizations, device, dtype and train/eval mode; says which
conv-like layers it left alone and why."""
import copy
import warnings

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrizations, parametrize

import convext
from test_no_aten_conv import offending_ops


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1, padding_mode="reflect")
        self.bn = nn.BatchNorm2d(8)
        self.branches = nn.ModuleList([nn.Conv2d(8, 8, 3, padding=1, groups=8),
                                       nn.Conv2d(8, 8, 1, bias=False)])
        self.seq = nn.Sequential(nn.Conv1d(8, 4, 3, padding="same"), nn.ReLU())

    def forward(self, x):
        x = self.bn(self.conv(x))
        x = self.branches[0](x) + self.branches[1](x)
        return self.seq(x.flatten(2))


class MyConv(nn.Conv2d):
    """A user subclass: its forward may differ, so convert leaves it alone."""


def _conv_classes(model):
    return [type(m) for m in model.modules() if isinstance(m, nn.modules.conv._ConvNd)]


def test_swaps_every_plain_conv_and_returns_model():
    model = Block()
    assert convext.convert(model) is model
    assert _conv_classes(model) == [convext.Conv2d, convext.Conv2d, convext.Conv2d,
                                    convext.Conv1d]


def test_top_level_conv_is_swapped():
    conv = nn.Conv1d(2, 3, 3)
    assert convext.convert(conv) is conv and type(conv) is convext.Conv1d


def test_other_conv_kinds_are_left_alone():
    model = nn.Sequential(MyConv(2, 2, 3), nn.Conv3d(2, 2, 1), nn.ConvTranspose3d(2, 2, 1),
                          nn.Conv2d(2, 2, 1))
    convext.convert(model)
    assert [type(m) for m in model] == [MyConv, nn.Conv3d, nn.ConvTranspose3d, convext.Conv2d]


class Decoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.up = nn.ConvTranspose2d(4, 3, 3, stride=2, padding=1, output_padding=1)
        self.up1d = nn.ConvTranspose1d(3, 2, 4, stride=2, groups=1, bias=False)

    def forward(self, x):
        return self.up1d(self.up(x).flatten(2))


def test_transposed_convs_are_swapped_and_match():
    torch.manual_seed(0)
    model = Decoder().double()
    reference = copy.deepcopy(model)
    params = [id(p) for p in model.parameters()]
    convext.convert(model)
    assert type(model.up) is convext.ConvTranspose2d
    assert type(model.up1d) is convext.ConvTranspose1d
    assert [id(p) for p in model.parameters()] == params
    x = torch.randn(2, 4, 3, 5, dtype=torch.float64)
    torch.testing.assert_close(model(x), reference(x), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(model.up(x, output_size=[5, 10]),
                               reference.up(x, output_size=[5, 10]), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("kind", ["Conv1d", "Conv2d", "ConvTranspose1d", "ConvTranspose2d"])
def test_lazy_conv_before_materialisation(kind):
    """A Lazy conv converted before its first call becomes convext's Lazy
    class, and convext's module on materialisation; that first call already
    runs convext, and the values and the parameters' init are nn's."""
    dims = int(kind[-2])
    torch.manual_seed(0)
    ours = getattr(nn, f"Lazy{kind}")(4, 3, stride=2)
    torch.manual_seed(0)
    theirs = getattr(nn, f"Lazy{kind}")(4, 3, stride=2)
    convext.convert(ours)
    assert isinstance(ours, getattr(nn, f"Lazy{kind}"))
    assert isinstance(ours, nn.modules.lazy.LazyModuleMixin)
    x = torch.randn(2, 3, *(9,) * dims)
    torch.manual_seed(1)
    expected = theirs(x)
    torch.manual_seed(1)
    assert offending_ops(lambda: ours(x)) == []  # the materialising call, on convext
    assert type(ours) is getattr(convext, kind) and type(theirs) is getattr(nn, kind)
    torch.testing.assert_close(ours.weight, theirs.weight)
    torch.testing.assert_close(ours(x), expected)
    assert convext.unconverted(ours) == []


def test_lazy_conv_after_materialisation():
    model = nn.Sequential(nn.LazyConv2d(4, 3), nn.LazyConvTranspose1d(2, 3))
    x = torch.randn(2, 3, 8, 8)
    model[0](x)
    convext.convert(model)
    assert type(model[0]) is convext.Conv2d and type(model[1]) is convext.LazyConvTranspose1d
    model[1](model[0](x).flatten(2))
    assert type(model[1]) is convext.ConvTranspose1d


class Scale(nn.Module):
    def forward(self, w):
        return 2 * w


@pytest.mark.parametrize("kind", ["Conv2d", "ConvTranspose2d", "Conv1d"])
def test_parametrized_conv_keeps_parametrizations(kind):
    torch.manual_seed(0)
    model = nn.Sequential(getattr(nn, kind)(3, 4, 3))
    parametrizations.weight_norm(model[0])
    parametrize.register_parametrization(model[0], "bias", Scale())
    reference = copy.deepcopy(model)
    original = model[0].parametrizations.weight.original0
    convext.convert(model)
    layer = model[0]
    assert parametrize.is_parametrized(layer, "weight") and parametrize.is_parametrized(
        layer, "bias")
    assert parametrize.type_before_parametrizations(layer) is getattr(convext, kind)
    assert isinstance(layer, getattr(convext, kind))
    assert layer.parametrizations.weight.original0 is original
    assert list(model.state_dict()) == list(reference.state_dict())
    x = torch.randn(2, 3, *(6,) * (2 if kind.endswith("2d") else 1))
    out = model(x)
    torch.testing.assert_close(out, reference(x))
    out.sum().backward()
    reference(x).sum().backward()
    torch.testing.assert_close(original.grad, reference[0].parametrizations.weight.original0.grad)
    assert offending_ops(lambda: model(x)) == []
    copy.deepcopy(model)  # parametrize's deepcopy support survives
    parametrize.remove_parametrizations(layer, "weight")
    assert type(layer) is not getattr(convext, kind)  # still parametrized (bias)
    parametrize.remove_parametrizations(layer, "bias")
    assert type(layer) is getattr(convext, kind)


def test_hook_based_weight_norm_keeps_working():
    def build():
        torch.manual_seed(0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.nn.utils.weight_norm
            return nn.utils.weight_norm(nn.Conv1d(3, 4, 3))  # (can't be deep-copied)

    model, reference = build(), build()
    convext.convert(model)
    assert type(model) is convext.Conv1d
    x = torch.randn(2, 3, 9)
    torch.testing.assert_close(model(x), reference(x))


class Mixed(nn.Module):
    def __init__(self):
        super().__init__()
        self.ok = nn.Conv2d(2, 2, 1)
        self.mine = MyConv(2, 2, 1)
        self.vol = nn.Conv3d(2, 2, 1)
        self.vol_up = nn.LazyConvTranspose3d(2, 1)
        self.blocks = nn.Sequential(nn.ConvTranspose2d(2, 2, 2))


def test_unconverted_lists_layers_left_alone_and_why():
    model = Mixed()
    convext.convert(model)
    left = convext.unconverted(model)
    assert [(u.name, u.kind) for u in left] == [
        ("mine", "MyConv"), ("vol", "Conv3d"), ("vol_up", "LazyConvTranspose3d")]
    assert "subclass of nn.Conv2d" in left[0].reason
    assert "3D" in left[1].reason and "3D" in left[2].reason


def test_unconverted_before_convert_lists_every_conv():
    names = [u.name for u in convext.unconverted(Mixed())]
    assert names == ["ok", "mine", "vol", "vol_up", "blocks.0"]


def test_unconverted_lists_conv_like_modules_that_are_not_nn_convs():
    class DeformConv(nn.Module):  # e.g. a custom or third-party conv layer
        def __init__(self):
            super().__init__()
            self.weight = nn.Parameter(torch.zeros(2, 2, 3, 3))

    class ConvBlock(nn.Module):  # a container, not a conv: not listed
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(2, 2, 1)

    model = convext.convert(nn.Sequential(DeformConv(), ConvBlock()))
    (left,) = convext.unconverted(model)
    assert left.name == "0" and left.kind.endswith("DeformConv") and "no drop-in" in left.reason


def test_report_prints_and_returns_model(capsys):
    model = Mixed()
    assert convext.convert(model, report=True) is model
    out = capsys.readouterr().out
    assert "left 3 conv-like layer(s) alone" in out
    assert "mine (MyConv)" in out and "vol (Conv3d)" in out
    convext.convert(nn.Conv2d(1, 1, 1), report=True)
    assert "every conv layer runs on convext" in capsys.readouterr().out


def test_strict_warns_about_layers_left_alone():
    with pytest.warns(UserWarning, match="left 3 conv-like layer"):
        convext.convert(Mixed(), strict=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        convext.convert(Decoder(), strict=True)  # everything converted: no warning


def test_keeps_parameters_buffers_and_hooks():
    model = Block()
    params = {name: p for name, p in model.named_parameters()}
    buffers = {name: b for name, b in model.named_buffers()}
    seen = []
    model.conv.register_forward_hook(lambda *args: seen.append("hook"))
    convext.convert(model)
    assert {n: id(p) for n, p in model.named_parameters()} == {n: id(p) for n, p in params.items()}
    assert {n: id(b) for n, b in model.named_buffers()} == {n: id(b) for n, b in buffers.items()}
    model(torch.randn(2, 3, 6, 6))
    assert seen == ["hook"]


@pytest.mark.parametrize("training", [True, False])
def test_keeps_mode_dtype_and_outputs(training):
    torch.manual_seed(0)
    model = Block().double().train(training)
    reference = copy.deepcopy(model)
    convext.convert(model)
    assert all(m.training == training for m in model.modules())
    assert all(p.dtype == torch.float64 for p in model.parameters())
    x = torch.randn(2, 3, 6, 6, dtype=torch.float64)
    torch.testing.assert_close(model(x), reference(x), rtol=1e-10, atol=1e-10)
    if training:  # batch-norm statistics were updated alike
        torch.testing.assert_close(model.bn.running_mean, reference.bn.running_mean)


def test_keeps_device(device):
    model = Block().to(device)
    convext.convert(model)
    assert all(p.device.type == device for p in model.parameters())


def test_existing_optimizer_still_trains_the_model():
    torch.manual_seed(0)
    model = Block()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    convext.convert(model)
    before = model.conv.weight.detach().clone()
    model(torch.randn(2, 3, 6, 6)).square().mean().backward()
    opt.step()
    assert not torch.equal(model.conv.weight, before)


def test_convert_is_idempotent():
    model = convext.convert(Block())
    classes = _conv_classes(model)
    convext.convert(model)
    assert _conv_classes(model) == classes


def test_converted_model_with_numpy_hyperparameters_still_runs():
    np = pytest.importorskip("numpy")
    stride, padding = np.int64(2), np.int64(1)  # e.g. read from a numpy config
    model = nn.Sequential(nn.Conv2d(3, 4, 3, stride=stride, padding=padding))
    x = torch.randn(1, 3, 8, 8)
    expected = model(x)
    convext.convert(model)
    torch.testing.assert_close(model(x), expected)
