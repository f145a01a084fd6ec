"""convext.convert: switch a model's nn convolution layers to convext, and say
which conv-like layers it left alone and why (convext.unconverted)."""
import warnings
from typing import NamedTuple

from torch import nn
from torch.nn.utils import parametrize

from . import modules

__all__ = ["convert", "unconverted", "Unconverted"]

_SWAPS = {getattr(nn, name): getattr(modules, name) for name in modules.__all__}


class Unconverted(NamedTuple):
    """A conv-like layer convert() leaves alone: its qualified name in the
    model ("" for the model itself), its class name and why."""
    name: str
    kind: str
    reason: str


def _original_class(module):
    """The module's class, before any torch.nn.utils.parametrize wrapper."""
    return parametrize.type_before_parametrizations(module)


def _reparametrized(module, swap):
    """parametrize gives a module a class of its own (Parametrized<Class>,
    holding the parametrized tensors' properties) that subclasses the original
    class: the same class, on top of convext's."""
    own = {k: v for k, v in vars(type(module)).items() if k not in ("__dict__", "__weakref__")}
    return type(type(module).__name__, (swap,), own)


def convert(model: nn.Module, *, report: bool = False, strict: bool = False) -> nn.Module:
    """Make every nn.Conv1d / Conv2d / ConvTranspose1d / ConvTranspose2d in
    `model` (itself included) a convext module, in place, and return `model`.

    The layers keep their parameter objects (so an existing optimizer still
    points at them), buffers, hooks, parametrizations, device, dtype and
    train/eval mode: only their class changes, to convext's subclass. Lazy
    convs become convext's Lazy ones (and so convext modules once
    materialised). Subclasses other than these (a user's own conv class, QAT
    convs), 3D convs and other conv-like layers are left alone, since their
    forward may differ: see unconverted(model).

    report=True prints the layers left alone and why; strict=True warns
    (UserWarning) when there are any.
    """
    for module in model.modules():
        swap = _SWAPS.get(_original_class(module))
        if swap is None:
            continue
        if parametrize.is_parametrized(module):
            module.__class__ = _reparametrized(module, swap)
        else:
            module.__class__ = swap
    if report or strict:
        left = unconverted(model)
        if left:
            text = _describe(left)
            if report:
                print(text)
            if strict:
                warnings.warn(text, UserWarning, stacklevel=2)
        elif report:
            print("convext.convert: every conv layer runs on convext")
    return model


def _reason(module):
    cls = _original_class(module)
    for base in cls.__mro__[1:]:
        if base in _SWAPS:
            return (f"a subclass of nn.{base.__name__}: its forward may differ from nn's, "
                    "so it keeps its own")
    if isinstance(module, nn.modules.conv._ConvNd):
        dims = len(module.kernel_size)
        if dims not in (1, 2):
            return f"a {dims}D convolution: convext implements 1D and 2D only"
        return "a convolution class convext has no drop-in for"
    return "not an nn.Conv* module (e.g. a quantized or custom conv): convext has no drop-in"


def _conv_like(module):
    if isinstance(module, nn.modules.conv._ConvNd):
        return True
    return "conv" in _original_class(module).__name__.lower() and hasattr(module, "weight")


def unconverted(model: nn.Module) -> list:
    """The conv-like layers of `model` that are not convext modules (after
    convert(), those it left alone), as Unconverted(name, kind, reason)."""
    left = []
    for name, module in model.named_modules():
        if _conv_like(module) and not isinstance(module, tuple(_SWAPS.values())):
            left.append(Unconverted(name, _original_class(module).__qualname__, _reason(module)))
    return left


def _describe(left):
    lines = [f"convext.convert left {len(left)} conv-like layer(s) alone:"]
    lines += [f"  {u.name or '(model)'} ({u.kind}): {u.reason}" for u in left]
    return "\n".join(lines)
