"""torch's argument parser, emulated for convext's public functions: which
argument types conv{1,2}d / conv_transpose{1,2}d accept, their conversion to
ints (int64 range), and torch's TypeError/ValueError texts otherwise. Plain
Python (no inspect.Signature), so torch.compile traces through it; tensor-likes
(FX proxies, subclasses with __torch_function__) pass as Tensors, as in torch.
"""
import functools
import operator

import torch
from torch.overrides import is_tensor_like

_INT64 = (-(1 << 63), (1 << 63) - 1)


def _as_int(value, name, fn):
    # Anything integer-like, as torch's argument parser accepts (numpy ints,
    # integer 0-d tensors, SymInts while tracing); not bools or floats.
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


def _is_tensor(value):
    return isinstance(value, torch.Tensor) or is_tensor_like(value)


def _typename(value):
    # Python's tp_name, as torch prints it: a C type's includes its module.
    t = type(value)
    if t.__flags__ & (1 << 9) or t.__module__ == "builtins":  # heap type or builtin
        return t.__name__
    return f"{t.__module__}.{t.__name__}"


# conv{1,2}d: two signatures (int or str padding), so torch prints them all.
_CONV_SIGNATURES = (
    " * (Tensor input, Tensor weight, Tensor bias = None, tuple of ints stride = 1, "
    "tuple of ints padding = 0, tuple of ints dilation = 1, int groups = 1)\n"
    " * (Tensor input, Tensor weight, Tensor bias = None, tuple of ints stride = 1, "
    'str padding = "valid", tuple of ints dilation = 1, int groups = 1)\n')

_CONV_ARGS = {
    "input": _is_tensor,
    "weight": _is_tensor,
    "bias": lambda v: v is None or _is_tensor(v),
    "stride": _is_int_list,
    "padding": lambda v: isinstance(v, str) or _is_int_list(v),
    "dilation": _is_int_list,
    "groups": _is_int,
}
_CONV_NAMES = tuple(_CONV_ARGS)


def parsed_like_conv(fn):
    """conv{1,2}d's argument types as torch's parser checks them, with its
    TypeError text, which lists the types as they were passed."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        named = dict(zip(_CONV_NAMES, args))
        ok = len(args) <= len(_CONV_NAMES) and all(
            k in _CONV_ARGS and k not in named for k in kwargs)
        named.update(kwargs)
        ok = ok and "input" in named and "weight" in named and all(
            _CONV_ARGS[k](v) for k, v in named.items())
        if not ok:
            got = [_typename(v) for v in args] + [f"{k}={_typename(v)}" for k, v in kwargs.items()]
            raise TypeError(f"{fn.__name__}() received an invalid combination of arguments - "
                            f"got ({', '.join(got)}), but expected one of:\n{_CONV_SIGNATURES}")
        return fn(*args, **kwargs)

    return wrapper


def check_layouts(input, weight, bias):
    """Jagged nested and sparse operands, with torch's texts."""
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


# conv_transpose{1,2}d: one signature, so torch names the offending argument.
_TRANSPOSE_ARGS = (("input", "Tensor"), ("weight", "Tensor"), ("bias", "Tensor"),
                   ("stride", "tuple of ints"), ("padding", "tuple of ints"),
                   ("output_padding", "tuple of ints"), ("groups", "int"),
                   ("dilation", "tuple of ints"))
_KIND_OK = {"Tensor": _is_tensor, "int": _is_int, "tuple of ints": _is_int_list}


def _check_transpose_args(fn, args, kwargs):
    names = [n for n, _ in _TRANSPOSE_ARGS]
    if len(args) > len(names):
        raise TypeError(f"{fn}() takes from 2 to {len(names)} positional arguments but "
                        f"{len(args)} were given")
    for k in kwargs:
        if k not in names:
            raise TypeError(f"{fn}() got an unexpected keyword argument '{k}'")
        if names.index(k) < len(args):
            raise TypeError(f"{fn}() got multiple values for argument '{k}'")
    for pos, (name, kind) in enumerate(_TRANSPOSE_ARGS):
        if pos < len(args):
            value, where = args[pos], f" (position {pos + 1})"
        elif name in kwargs:
            value, where = kwargs[name], ""
        elif pos < 2:
            missing = [n for n in names[pos:2] if n not in kwargs]
            raise TypeError(f"{fn}() missing {len(missing)} required positional arguments: "
                            + ", ".join(f'"{n}"' for n in missing))
        else:
            continue
        if (name == "bias" and value is None) or _KIND_OK[kind](value):
            continue
        if kind == "tuple of ints" and isinstance(value, (list, tuple)) and value:
            bad = next(i for i, v in enumerate(value) if not _is_int(v))
            raise TypeError(f"{fn}(): argument '{name}' failed to unpack the object at pos "
                            f"{bad + 1} with error \"type must be tuple of ints,but got "
                            f"{_typename(value[bad])}\"")
        raise TypeError(f"{fn}(): argument '{name}'{where} must be {kind}, "
                        f"not {_typename(value)}")


def parsed_like_conv_transpose(fn):
    """conv_transpose{1,2}d's argument types as torch's parser checks them."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        _check_transpose_args(fn.__name__, args, kwargs)
        return fn(*args, **kwargs)

    return wrapper
