"""convext.conv1d / convext.conv2d: the signature and semantics of
torch.nn.functional.conv1d / conv2d, computed by convext's kernels."""
import operator

import torch
import torch.nn.functional as F

from ._ops import ops

__all__ = ["conv1d", "conv2d"]


def _as_int(value, name, fn):
    # Anything integer-like, as torch's argument parser accepts (numpy ints,
    # integer 0-d tensors, SymInts while tracing); not bools or floats.
    if isinstance(value, torch.SymInt):
        return value
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise TypeError(f"{fn}(): argument '{name}' must be tuple of ints, "
                        f"but found element of type {type(value).__name__}")
    return operator.index(value)


def _int_list(value, name, dims, fn):
    """An int -> [int] * dims, a sequence -> list as given: the op broadcasts
    1-element lists and checks lengths with torch's messages."""
    if isinstance(value, (list, tuple, torch.Size)):
        return [_as_int(v, name, fn) for v in value]
    return [_as_int(value, name, fn)] * dims


def _broadcast(values, name, dims):
    if len(values) not in (1, dims):
        raise RuntimeError(f"{name} cannot broadcast to {dims} dimensions")
    return values * dims if len(values) == 1 else values


def _same_padding(input, weight, stride, dilation, groups, dims):
    """padding='same': ATen's checks for it, in its order, then symmetric
    padding plus one extra zero row/column at the end where the dilated
    kernel's span is odd. Returns the (maybe padded) input and the padding."""
    if weight.dim() < 3 or groups <= 0:
        return input, [0] * dims  # the op reports these with torch's message
    if weight.dim() != input.dim():
        raise RuntimeError(
            f"Expected {weight.dim()}-dimensional input for {weight.dim()}-dimensional "
            f"weight{list(weight.shape)}, but got {input.dim()}-dimensional input of size "
            f"{list(input.shape)} instead")
    stride = _broadcast(stride, "stride", dims)
    dilation = _broadcast(dilation, "dilation", dims)
    if any(s != 1 for s in stride):
        raise RuntimeError("padding='same' is not supported for strided convolutions")
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


def _as_batched(input, dims, fn):
    """(input with a batch dim, whether it had one), with torch's check."""
    if input.dim() not in (dims + 1, dims + 2):
        raise RuntimeError(
            f"Expected {dims + 1}D (unbatched) or {dims + 2}D (batched) input to {fn}, "
            f"but got input of size: {list(input.shape)}")
    batched = input.dim() == dims + 2
    return (input if batched else input.unsqueeze(0)), batched


def _conv(input, weight, bias, stride, padding, dilation, groups, dims):
    fn = f"conv{dims}d"
    if not isinstance(input, torch.Tensor) or not isinstance(weight, torch.Tensor):
        raise TypeError(f"{fn}(): argument 'input' and 'weight' must be Tensor")
    input, batched = _as_batched(input, dims, fn)
    groups = _as_int(groups, "groups", fn)
    stride = _int_list(stride, "stride", dims, fn)
    dilation = _int_list(dilation, "dilation", dims, fn)
    if isinstance(padding, str):
        if padding == "valid":
            padding = [0] * dims
        elif padding == "same":
            input, padding = _same_padding(input, weight, stride, dilation, groups, dims)
        else:
            raise RuntimeError(f"Invalid padding string: '{padding}'")
    else:
        padding = _int_list(padding, "padding", dims, fn)
    out = getattr(ops, fn)(input, weight, bias, stride, padding, dilation, groups)
    return out if batched else out.squeeze(0)


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Drop-in for torch.nn.functional.conv1d."""
    return _conv(input, weight, bias, stride, padding, dilation, groups, 1)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Drop-in for torch.nn.functional.conv2d."""
    return _conv(input, weight, bias, stride, padding, dilation, groups, 2)
