"""convext.conv1d / convext.conv2d: the signature and semantics of
torch.nn.functional.conv1d / conv2d, computed by convext's kernels."""
import operator

import torch
import torch.nn.functional as F

from ._ops import ops

__all__ = ["conv1d", "conv2d"]


def _expand(value, name, dims, fn):
    """An int or a sequence of ints -> list (a 1-element sequence broadcasts,
    as in torch). The op checks the length with torch's message."""
    def as_int(v):
        if isinstance(v, bool) or not isinstance(v, (int, torch.SymInt, torch.Tensor)):
            raise TypeError(f"{fn}(): argument '{name}' must be tuple of ints, "
                            f"but found element of type {type(v).__name__}")
        return v if isinstance(v, torch.SymInt) else operator.index(v)

    if isinstance(value, (list, tuple, torch.Size)):
        values = [as_int(v) for v in value]
        return values * dims if len(values) == 1 else values
    return [as_int(value)] * dims


def _same_padding(input, weight, stride, dilation, dims):
    """padding='same': symmetric padding, plus one extra zero row/column on the
    right/bottom where the dilated kernel's span is odd (as ATen does)."""
    if any(s != 1 for s in stride):
        raise RuntimeError("padding='same' is not supported for strided convolutions")
    if weight.dim() != dims + 2:
        return input, [0] * dims  # the op reports the bad weight with torch's message
    left, extra = [], []
    for i in range(dims):
        total = dilation[i] * (weight.shape[2 + i] - 1)
        left.append(total // 2)
        extra.append(total - 2 * (total // 2))
    if any(extra):
        pad = []
        for e in reversed(extra):  # F.pad lists the last dim first
            pad += [0, e]
        input = F.pad(input, pad)
    return input, left


def _conv(input, weight, bias, stride, padding, dilation, groups, dims):
    fn = f"conv{dims}d"
    if not isinstance(input, torch.Tensor) or not isinstance(weight, torch.Tensor):
        raise TypeError(f"{fn}(): argument 'input' and 'weight' must be Tensor")
    if input.dim() not in (dims + 1, dims + 2):
        raise RuntimeError(
            f"Expected {dims + 1}D (unbatched) or {dims + 2}D (batched) input to {fn}, "
            f"but got input of size: {list(input.shape)}")
    batched = input.dim() == dims + 2
    if not batched:
        input = input.unsqueeze(0)
    if isinstance(groups, bool) or not isinstance(groups, (int, torch.SymInt)):
        raise TypeError(f"{fn}(): argument 'groups' must be int, not {type(groups).__name__}")
    stride = _expand(stride, "stride", dims, fn)
    dilation = _expand(dilation, "dilation", dims, fn)
    if isinstance(padding, str):
        if padding == "valid":
            padding = [0] * dims
        elif padding == "same":
            input, padding = _same_padding(input, weight, stride, dilation, dims)
        else:
            raise RuntimeError(f"Invalid padding string: '{padding}'")
    else:
        padding = _expand(padding, "padding", dims, fn)
    out = getattr(ops, fn)(input, weight, bias, stride, padding, dilation, groups)
    return out if batched else out.squeeze(0)


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Drop-in for torch.nn.functional.conv1d."""
    return _conv(input, weight, bias, stride, padding, dilation, groups, 1)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Drop-in for torch.nn.functional.conv2d."""
    return _conv(input, weight, bias, stride, padding, dilation, groups, 2)
