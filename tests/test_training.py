"""A few SGD steps of a small CNN with convext modules and with nn's: the
losses and the final parameters agree."""
import copy

import pytest
import torch
from torch import nn

import convext


def cnn_2d():
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 16, 3, stride=2, padding=1, groups=8, padding_mode="replicate"), nn.ReLU(),
        nn.Conv2d(16, 12, 1, bias=False), nn.ReLU(),
        nn.Conv2d(12, 12, (3, 2), padding="same", dilation=2, groups=3), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(12, 4))


def cnn_1d():
    return nn.Sequential(
        nn.Conv1d(3, 8, 5, stride=2, padding=2), nn.ReLU(),
        nn.Conv1d(8, 8, 4, padding="same", groups=8, padding_mode="reflect"), nn.ReLU(),
        nn.Conv1d(8, 6, 3, dilation=3), nn.ReLU(),
        nn.AdaptiveMaxPool1d(1), nn.Flatten(), nn.Linear(6, 4))


MODELS = {"2d": (cnn_2d, (16, 3, 12, 10)), "1d": (cnn_1d, (16, 3, 40))}


def train(model, inputs, targets, steps):
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(inputs), targets)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


@pytest.mark.parametrize("dtype, rtol, atol", [(torch.float32, 2e-4, 2e-5),
                                               (torch.float64, 1e-9, 1e-10)])
@pytest.mark.parametrize("kind", MODELS)
def test_training_matches_nn(kind, dtype, rtol, atol):
    build, input_shape = MODELS[kind]
    torch.manual_seed(0)
    reference = build().to(dtype)
    model = convext.convert(copy.deepcopy(reference))
    assert any(type(m).__module__.startswith("convext") for m in model.modules())
    inputs = torch.randn(input_shape, dtype=dtype)
    targets = torch.randint(0, 4, (input_shape[0],))

    losses = train(model, inputs, targets, steps=6)
    ref_losses = train(reference, inputs, targets, steps=6)
    torch.testing.assert_close(losses, ref_losses, rtol=rtol, atol=atol)
    assert losses[-1] < losses[0], "the model did not learn"
    for (name, p), q in zip(model.named_parameters(), reference.parameters()):
        torch.testing.assert_close(p, q, rtol=rtol, atol=atol, msg=lambda m, name=name:
                                   f"{name}: {m}")
