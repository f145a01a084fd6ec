"""convext.convert: switch a model's nn.Conv1d / nn.Conv2d layers to convext."""
from torch import nn

from .modules import Conv1d, Conv2d

__all__ = ["convert"]

_SWAPS = {nn.Conv1d: Conv1d, nn.Conv2d: Conv2d}


def convert(model: nn.Module) -> nn.Module:
    """Make every plain nn.Conv1d / nn.Conv2d in `model` (itself included) a
    convext module, in place, and return `model`.

    The layers keep their parameter objects (so an existing optimizer still
    points at them), buffers, hooks, device, dtype and train/eval mode: only
    their class changes, to convext's subclass. Subclasses of nn.Conv* other
    than plain ones are left alone, since their forward may differ.
    """
    for module in model.modules():
        swap = _SWAPS.get(type(module))
        if swap is not None:
            module.__class__ = swap
    return model
