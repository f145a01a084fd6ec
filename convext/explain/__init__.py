"""convext.explain(obj, input_shape): why a conv has its shape, what it
costs and what each output sees, for one layer or a whole model, without
computing anything (shapes come from a run on the `meta` device).

    e = convext.explain(nn.Conv1d(3, 8, 5, padding=2), (1, 3, 100))
    print(e)                 # the report; e.to_dict() for programs
    e.inputs_of(0)           # input cells output 0 reads (padding included)
    e.outputs_of(10)         # outputs that input cell 10 affects
    print(e.draw(0))         # those taps drawn on the input row

Command line: python -m convext.explain "Conv1d(3, 8, 5, padding=2)" --input 1,3,100
"""
import torch
from torch import nn

from . import build, trace
from .explanation import Explanation, Layer, Region

__all__ = ["explain", "Explanation", "Layer", "Region"]


def _shape(input_shape):
    if isinstance(input_shape, torch.Tensor):
        return tuple(input_shape.shape)
    try:
        shape = tuple(int(s) for s in input_shape)
    except TypeError:
        raise TypeError("convext.explain: input_shape must be a tuple of ints such as "
                        f"(1, 3, 100), got {input_shape!r}") from None
    if any(s < 0 for s in shape):
        raise ValueError(f"convext.explain: negative size in input_shape {shape}")
    return shape


def explain(obj, input_shape):
    """Explain `obj` (a conv or pooling layer, any nn.Module model, or a dict
    of a functional conv's keyword arguments: weight (tensor or shape), bias,
    stride, padding, dilation, groups, and output_padding/transposed=True for
    F.conv_transpose) run on an input of `input_shape` (batched or not).

    Impossible configurations do not raise: the Explanation carries torch's
    error, the arithmetic behind it and the smallest fixes (e.error)."""
    if isinstance(obj, dict):
        model = build.from_kwargs(obj)
        title = repr(model)
    elif isinstance(obj, nn.Module):
        model = obj
        title = type(obj).__name__ if list(obj.children()) else repr(obj)
    else:
        raise TypeError("convext.explain: expected an nn.Module (a layer or a model) or a "
                        f"dict of functional conv arguments, got {type(obj).__name__}")
    shape = _shape(input_shape)
    return Explanation(trace.run(model, shape), shape, title, model)
