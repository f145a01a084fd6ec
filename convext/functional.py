"""convext.conv1d / convext.conv2d: the signature and semantics of
torch.nn.functional.conv1d / conv2d, computed by convext's kernels."""
import functools
import operator

import torch
import torch.nn.functional as F

from ._ops import ops

__all__ = ["conv1d", "conv2d"]


_INT64 = (-(1 << 63), (1 << 63) - 1)


def _as_int(value, name, fn):
    # Anything integer-like, as torch's argument parser accepts (numpy ints,
    # integer 0-d tensors, SymInts while tracing); not bools or floats (the
    # types are checked up front by _parsed_like_torch).
    if isinstance(value, torch.SymInt):
        return value
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise TypeError(f"{fn}(): argument '{name}' must be tuple of ints, "
                        f"but found element of type {type(value).__name__}")
    value = operator.index(value)
    if not _INT64[0] <= value <= _INT64[1]:
        raise ValueError("Overflow when unpacking long long")
    return value


def _int_list(value, name, dims, fn):
    """An int -> [int] * dims, a sequence -> list as given: the op broadcasts
    1-element lists and checks lengths with torch's messages."""
    if isinstance(value, (list, tuple, torch.Size)):
        out = []
        for pos, v in enumerate(value):
            try:
                out.append(_as_int(v, name, fn))
            except ValueError as e:  # torch's wording, less its C++ stack trace
                raise TypeError(f"{fn}(): argument '{name}' failed to unpack the object at "
                                f"pos {pos + 1} with error \"{e}\"") from None
        return out
    return [_as_int(value, name, fn)] * dims


# torch's argument parser: what conv{1,2}d accept, and its message otherwise.
_SIGNATURES = (
    " * (Tensor input, Tensor weight, Tensor bias = None, tuple of ints stride = 1, "
    "tuple of ints padding = 0, tuple of ints dilation = 1, int groups = 1)\n"
    " * (Tensor input, Tensor weight, Tensor bias = None, tuple of ints stride = 1, "
    'str padding = "valid", tuple of ints dilation = 1, int groups = 1)\n')


def _is_int(value):
    if isinstance(value, torch.SymInt):
        return True
    if isinstance(value, bool):
        return False
    try:
        operator.index(value)
    except TypeError:
        return False
    return True


def _is_int_list(value):
    if isinstance(value, (list, tuple, torch.Size)):
        return all(_is_int(v) for v in value)
    return _is_int(value)


_ARG_OK = {
    "input": lambda v: isinstance(v, torch.Tensor),
    "weight": lambda v: isinstance(v, torch.Tensor),
    "bias": lambda v: v is None or isinstance(v, torch.Tensor),
    "stride": _is_int_list,
    "padding": lambda v: isinstance(v, str) or _is_int_list(v),
    "dilation": _is_int_list,
    "groups": _is_int,
}


def _typename(value):
    # Python's tp_name, as torch prints it: a C type's includes its module.
    t = type(value)
    if t.__flags__ & (1 << 9) or t.__module__ == "builtins":  # heap type or builtin
        return t.__name__
    return f"{t.__module__}.{t.__name__}"


_ARG_NAMES = tuple(_ARG_OK)


def _parsed_like_torch(fn):
    """Checks the argument types of conv{1,2}d as torch's argument parser
    does, with its TypeError text, which lists the types as they were passed.
    (Plain Python, no inspect.Signature, so torch.compile traces through.)"""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        named = dict(zip(_ARG_NAMES, args))
        ok = len(args) <= len(_ARG_NAMES) and all(
            k in _ARG_OK and k not in named for k in kwargs)
        named.update(kwargs)
        ok = ok and "input" in named and "weight" in named and all(
            _ARG_OK[k](v) for k, v in named.items())
        if not ok:
            got = [_typename(v) for v in args] + [f"{k}={_typename(v)}" for k, v in kwargs.items()]
            raise TypeError(f"{fn.__name__}() received an invalid combination of arguments - "
                            f"got ({', '.join(got)}), but expected one of:\n{_SIGNATURES}")
        return fn(*args, **kwargs)

    return wrapper


def _check_layouts(input, weight, bias):
    if input.layout == torch.jagged:
        raise ValueError(
            "NestedTensor convolution_default(input: jt, weight: t, bias: t?, stride: any, "
            "padding: any, dilation: any, transposed: any, output_padding: any, groups: any): "
            "expected input to be a contiguous jagged layout NestedTensor")
    # Sparse operands: the wording of torch's oneDNN path (its other CPU path
    # says "unsupported memory format option Contiguous").
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and (input.layout != torch.strided or t.layout != torch.strided):
            raise RuntimeError(
                f"Input type ({input.type()}) and {name} type ({t.type()}) should be the same "
                f"or input should be a MKLDNN tensor and {name} is a dense tensor")


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


def _conv(input, weight, bias, stride, padding, dilation, groups, dims):
    fn = f"conv{dims}d"
    if not isinstance(input, torch.Tensor) or not isinstance(weight, torch.Tensor):
        raise TypeError(f"{fn}(): argument 'input' and 'weight' must be Tensor")
    _check_layouts(input, weight, bias)
    if input.dim() not in (dims + 1, dims + 2):
        raise RuntimeError(
            f"Expected {dims + 1}D (unbatched) or {dims + 2}D (batched) input to {fn}, "
            f"but got input of size: {list(input.shape)}")
    batched = input.dim() == dims + 2
    if not batched:
        input = input.unsqueeze(0)
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


@_parsed_like_torch
def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Drop-in for torch.nn.functional.conv1d."""
    return _conv(input, weight, bias, stride, padding, dilation, groups, 1)


@_parsed_like_torch
def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Drop-in for torch.nn.functional.conv2d."""
    return _conv(input, weight, bias, stride, padding, dilation, groups, 2)
