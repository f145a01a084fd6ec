"""convext.convert: swaps every plain nn.Conv1d / nn.Conv2d in place, keeping
parameters, buffers, hooks, device, dtype and train/eval mode."""
import copy

import pytest
import torch
from torch import nn

import convext


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
    model = nn.Sequential(MyConv(2, 2, 3), nn.Conv3d(2, 2, 1), nn.ConvTranspose2d(2, 2, 3),
                          nn.Conv2d(2, 2, 1))
    convext.convert(model)
    assert [type(m) for m in model] == [MyConv, nn.Conv3d, nn.ConvTranspose2d, convext.Conv2d]


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
