"""convext.conv1d / convext.conv2d: the signature and semantics of
torch.nn.functional.conv1d / conv2d, computed by convext's kernels."""
from typing import List, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.overrides import handle_torch_function, has_torch_function_variadic

from . import _ops  # noqa: F401  (registers the ops)
from ._args import _as_int, _int_list, check_layouts, parsed_like_conv

__all__ = ["conv1d", "conv2d"]


def _broadcast(values: List[int], name: str, dims: int) -> List[int]:
    if len(values) != 1 and len(values) != dims:
        raise RuntimeError(f"{name} cannot broadcast to {dims} dimensions")
    return values * dims if len(values) == 1 else values


def _same_padding(input: Tensor, weight: Tensor, stride: List[int], dilation: List[int],
                  groups: int, dims: int,
                  kernel_size: Optional[List[int]]) -> Tuple[Tensor, List[int]]:
    """padding='same': ATen's checks for it, in its order, then symmetric
    padding plus one extra zero row/column at the end where the dilated
    kernel's span is odd. Returns the (maybe padded) input and the padding.

    A module passes its kernel_size: plain ints even under torch.jit.trace,
    where the weight's sizes are traced values. Traced sizes are neither
    branched on nor passed to the op (either would bake this kernel's padding
    into the trace): F.pad, which records them, then pads all of it."""
    if weight.dim() < 3 or groups <= 0:
        return input, [0] * dims  # the op reports these with torch's message
    if weight.dim() != input.dim():
        raise RuntimeError(
            f"Expected {weight.dim()}-dimensional input for {weight.dim()}-dimensional "
            f"weight{list(weight.size())}, but got {input.dim()}-dimensional input of size "
            f"{list(input.size())} instead")
    stride = _broadcast(stride, "stride", dims)
    dilation = _broadcast(dilation, "dilation", dims)
    for s in stride:
        if s != 1:
            raise RuntimeError("padding='same' is not supported for strided convolutions")
    traced = kernel_size is None and torch.jit.is_tracing()
    kernel = weight.size()[2:] if kernel_size is None else kernel_size
    left: List[int] = []
    pad: List[int] = []  # F.pad lists the last dim first
    odd = False
    for i in range(dims):
        total = dilation[i] * (kernel[i] - 1)
        if traced:
            pad = [total // 2, total - total // 2] + pad
            left.append(0)
        else:
            pad = [0, total % 2] + pad
            left.append(total // 2)
            odd = odd or total % 2 == 1
    if odd or traced:
        input = F.pad(input, pad)
    return input, left


def _as_batched(input: Tensor, dims: int, fn: str) -> Tuple[Tensor, bool]:
    """(input with a batch dim, whether it had one), with torch's check.
    Shared by conv and conv_transpose; TorchScript compiles it."""
    if input.dim() != dims + 1 and input.dim() != dims + 2:
        raise RuntimeError(
            f"Expected {dims + 1}D (unbatched) or {dims + 2}D (batched) input to {fn}, "
            f"but got input of size: {list(input.size())}")
    batched = input.dim() == dims + 2
    return (input if batched else input.unsqueeze(0)), batched


def _convolve(input: Tensor, weight: Tensor, bias: Optional[Tensor], stride: List[int],
              padding: Union[str, List[int]], dilation: List[int], groups: int, dims: int,
              kernel_size: Optional[List[int]] = None) -> Tensor:
    """The convolution once arguments are parsed; TorchScript compiles it for
    the modules (see modules.py), and _conv calls it once the arguments are
    plain (no __torch_function__ left to honour)."""
    input, batched = _as_batched(input, dims, f"conv{dims}d")
    if isinstance(padding, str):
        if padding == "valid":
            pad = [0] * dims
        elif padding == "same":
            input, pad = _same_padding(input, weight, stride, dilation, groups, dims, kernel_size)
        else:
            raise RuntimeError(f"Invalid padding string: '{padding}'")
    else:
        pad = padding
    if dims == 1:
        out = torch.ops.convext.conv1d(input, weight, bias, stride, pad, dilation, groups)
    else:
        out = torch.ops.convext.conv2d(input, weight, bias, stride, pad, dilation, groups)
    return out if batched else out.squeeze(0)


def _conv(input, weight, bias, stride, padding, dilation, groups, dims, kernel_size=None):
    """Parses arguments as torch's argument parser does (Python only). FX
    proxies, tensor subclasses and TorchFunctionModes see the public function
    as one call, as with torch.nn.functional's."""
    if has_torch_function_variadic(input, weight, bias):
        fn = conv1d if dims == 1 else conv2d
        return handle_torch_function(fn, (input, weight, bias), input, weight, bias,
                                     stride=stride, padding=padding, dilation=dilation,
                                     groups=groups)
    fn = f"conv{dims}d"
    if not isinstance(input, torch.Tensor) or not isinstance(weight, torch.Tensor):
        raise TypeError(f"{fn}(): argument 'input' and 'weight' must be Tensor")
    check_layouts(input, weight, bias)
    groups = _as_int(groups, "groups", fn)
    stride = _int_list(stride, "stride", dims, fn)
    dilation = _int_list(dilation, "dilation", dims, fn)
    if not isinstance(padding, str):
        padding = _int_list(padding, "padding", dims, fn)
    return _convolve(input, weight, bias, stride, padding, dilation, groups, dims, kernel_size)


@parsed_like_conv
def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Drop-in for torch.nn.functional.conv1d."""
    return _conv(input, weight, bias, stride, padding, dilation, groups, 1)


@parsed_like_conv
def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Drop-in for torch.nn.functional.conv2d."""
    return _conv(input, weight, bias, stride, padding, dilation, groups, 2)
