"""Turn what the user hands explain() into a module to trace: a module as
is, the keyword arguments of a functional conv (FunctionalConv), or a CLI
spec string such as "Conv1d(3, 8, 5, padding=2); ReLU(); MaxPool1d(2)".

Spec strings are parsed with `ast`, never evaluated: each part must be a
call of an allowed layer class with literal arguments only."""
import ast

import torch
import torch.nn.functional as F
from torch import nn

from . import geometry


def _meta_parameter(value):
    if isinstance(value, torch.Tensor):
        t = torch.empty(value.shape, dtype=value.dtype, device="meta")
    else:
        t = torch.empty(tuple(value), device="meta")
    return nn.Parameter(t, requires_grad=False)


class FunctionalConv(nn.Module):
    """F.conv1d/2d or F.conv_transpose1d/2d with fixed keyword arguments,
    as a layer (weight and bias may be given as tensors or shapes)."""

    def __init__(self, weight, bias=None, stride=1, padding=0, dilation=1, groups=1,
                 output_padding=0, transposed=False):
        super().__init__()
        # only shapes matter: meta tensors, the user's data is never copied
        self.weight = _meta_parameter(weight)
        self.bias = None if bias is None else _meta_parameter(bias)
        w = self.weight
        dims = w.dim() - 2
        self.explain_dims = dims if dims in (1, 2) else None
        self.explain_kind = ("transposed" if transposed else "conv") if self.explain_dims else None
        self.kernel_size = tuple(w.shape[2:])
        self.stride, self.padding, self.dilation = stride, padding, dilation
        self.groups, self.output_padding, self.transposed = groups, output_padding, transposed
        if transposed:
            self.in_channels, self.out_channels = w.shape[0], w.shape[1] * groups
        else:
            self.in_channels, self.out_channels = w.shape[1] * groups, w.shape[0]

    def forward(self, x):
        d = self.explain_dims or 1
        if self.transposed:
            return getattr(F, f"conv_transpose{d}d")(
                x, self.weight, self.bias, self.stride, self.padding,
                self.output_padding, self.groups, self.dilation)
        return getattr(F, f"conv{d}d")(x, self.weight, self.bias, self.stride,
                                      self.padding, self.dilation, self.groups)

    def extra_repr(self):
        fn = f"conv_transpose{self.explain_dims}d" if self.transposed else \
            f"conv{self.explain_dims}d"
        return (f"F.{fn}(weight{tuple(self.weight.shape)}, stride={self.stride}, "
                f"padding={self.padding!r}, dilation={self.dilation}, groups={self.groups})")


_FUNCTIONAL_KEYS = {"weight", "bias", "stride", "padding", "dilation", "groups",
                    "output_padding", "transposed"}


def from_kwargs(kwargs):
    unknown = set(kwargs) - _FUNCTIONAL_KEYS
    if "weight" not in kwargs or unknown:
        raise TypeError("convext.explain: a dict must hold the keyword arguments of a "
                        "functional conv: weight (a tensor or its shape) and optionally "
                        f"{', '.join(sorted(_FUNCTIONAL_KEYS - {'weight'}))}"
                        + (f"; unknown: {', '.join(sorted(unknown))}" if unknown else ""))
    return FunctionalConv(**kwargs)


# ---- CLI specs ------------------------------------------------------------

def _allowed():
    """Layer classes a spec may build: torch.nn's convs, pooling and the
    element-wise layers, plus convext's own conv classes."""
    import convext
    classes = {c.__name__: c for c in geometry.ELEMENTWISE}
    for name in dir(nn):
        cls = getattr(nn, name)
        if isinstance(cls, type) and issubclass(cls, nn.Module) and \
                cls.__module__ in ("torch.nn.modules.conv", "torch.nn.modules.pooling") and \
                not name.startswith("Lazy"):
            classes[name] = cls
    classes["Flatten"] = nn.Flatten
    extra = {f"convext.{n}": getattr(convext, n) for n in dir(convext)
             if isinstance(getattr(convext, n), type)
             and issubclass(getattr(convext, n), nn.Module)}
    return classes, extra


class SpecError(ValueError):
    pass


def _dotted(node):
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    raise SpecError("expected a layer name such as Conv1d")


def parse_spec(text):
    """[(source text, class, args, kwargs)] for each ';'-separated part."""
    classes, extra = _allowed()
    parts = []
    for source in (p.strip() for p in text.split(";")):
        if not source:
            continue
        try:
            node = ast.parse(source, mode="eval").body
        except SyntaxError as exc:
            raise SpecError(f"{source!r} is not a layer call: {exc.msg}") from None
        if not isinstance(node, ast.Call):
            raise SpecError(f"{source!r} is not a layer call such as Conv1d(3, 8, 5)")
        name = _dotted(node.func)
        short = name.removeprefix("torch.").removeprefix("nn.")
        cls = extra.get(name) or classes.get(short)
        if cls is None:
            raise SpecError(f"{name} is not an allowed layer; use a torch.nn conv, pooling "
                            "or element-wise layer (e.g. Conv1d, MaxPool2d, ReLU)")
        try:
            args = [ast.literal_eval(a) for a in node.args]
            kwargs = {k.arg: ast.literal_eval(k.value) for k in node.keywords
                      if k.arg is not None}
        except ValueError:
            raise SpecError(f"{source!r}: arguments must be plain numbers, strings, "
                            "tuples or True/False/None") from None
        if any(k.arg is None for k in node.keywords):
            raise SpecError(f"{source!r}: **kwargs are not allowed")
        parts.append((source, cls, args, kwargs))
    if not parts:
        raise SpecError("no layer given")
    return parts
