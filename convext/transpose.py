"""convext.conv_transpose1d / conv_transpose2d: the signature and semantics of
torch.nn.functional.conv_transpose1d / conv_transpose2d.

A transposed convolution is the gradient of a convolution with respect to its
input, so it runs on the stride-phase grad_input op (no kernel of its own):

    conv_transpose(x, w, b) == conv{d}d_grad_input(x, w, output_size, stride, padding, ..., b)

with x in the role of grad_output and w (C_in, C_out/groups, k...) in the role
of the forward weight. Gradients and double backward are that op's autograd
formulas. Arguments are checked here, in ATen's order and wording (for the
checks that ATen leaves to its backends, the wording of its portable CPU path,
slow_conv_transpose2d, which float64 takes).

Split like functional.py: Python-only argument parsing (`_conv_transpose`,
with __torch_function__ handling, so FX records one call) and a core that
TorchScript compiles for the modules (`_transpose`, `_check`).
"""
import warnings
from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.overrides import handle_torch_function, has_torch_function_variadic

from ._ops import _out_format
from ._args import _as_int, _int_list, parsed_like_conv_transpose
from .functional import _as_batched

__all__ = ["conv_transpose1d", "conv_transpose2d"]


def _expand(values: List[int], name: str, dims: int) -> List[int]:
    """ATen's expand_param_if_needed."""
    if len(values) == 1:
        return values * dims
    if len(values) != dims:
        raise RuntimeError(
            f"expected {name} to be a single integer value or a list of {dims} values to "
            f"match the convolution dimensions, but got {name}={values}")
    return values


def _as_2d(values: List[int], dims: int, fill: int) -> List[int]:
    """A parameter of a 1D conv as torch sees it on its (N, C, 1, L) view."""
    return [fill] + values if dims == 1 else values


def _pairs(name: str, values: List[int]) -> str:
    return f"{name}_height: {values[0]} {name}_width: {values[1]}"


def _any_below(values: List[int], bound: int) -> bool:
    for v in values:
        if v < bound:
            return True
    return False


def _type_name(t: Tensor) -> str:
    """"torch.FloatTensor", as ATen's Tensor::toString()."""
    if torch.jit.is_scripting():
        return str(t.dtype)  # Tensor.type() is Python-only
    return t.type()


def _check(input: Tensor, weight: Tensor, bias: Optional[Tensor], stride: List[int],
           padding: List[int], output_padding: List[int], dilation: List[int], groups: int,
           dims: int) -> Tuple[List[int], List[int], List[int], List[int]]:
    """ATen's _convolution / check_shape_forward checks for transposed=True,
    then slow_conv_transpose2d's. Returns (stride, padding, output_padding,
    dilation) as lists of `dims` ints. `input` is batched."""
    if weight.dim() <= 2:
        raise RuntimeError("weight should have at least three dimensions")
    if groups <= 0:
        raise RuntimeError("non-positive groups is not supported")
    wd = weight.dim() - 2
    stride = _expand(stride, "stride", wd)
    padding = _expand(padding, "padding", wd)
    dilation = _expand(dilation, "dilation", wd)
    output_padding = _expand(output_padding, "output_padding", wd)
    if _any_below(padding, 0):
        raise RuntimeError("negative padding is not supported")
    if _any_below(output_padding, 0):
        raise RuntimeError("negative output_padding is not supported")
    if _any_below(stride, 1):
        raise RuntimeError("non-positive stride is not supported")
    if _any_below(dilation, 0):
        raise RuntimeError("dilation should be greater than zero")
    ws = list(weight.size())
    if weight.dim() != input.dim():
        raise RuntimeError(
            f"Expected {weight.dim()}-dimensional input for {weight.dim()}-dimensional weight "
            f"{ws}, but got {input.dim()}-dimensional input of size {list(input.size())} instead")
    if ws[0] < groups:
        raise RuntimeError(f"Given groups={groups}, expected weight to be at least {groups} at "
                           f"dimension 0, but got weight of size {ws} instead")
    if ws[0] % groups != 0:
        raise RuntimeError(f"Given groups={groups}, expected weight to be divisible by {groups} "
                           f"at dimension 0, but got weight of size [{ws}] instead")
    if input.size(1) != ws[0]:
        raise RuntimeError(
            f"Given transposed=1, weight of size {ws}, expected input{list(input.size())} to "
            f"have {ws[0]} channels, but got {input.size(1)} channels instead")
    if bias is not None:
        if bias.dim() != 1 or bias.size(0) != ws[1] * groups:
            raise RuntimeError(
                f"Given transposed=1, weight of size {ws}, expected bias to be 1-dimensional "
                f"with {ws[1] * groups} elements, but got bias of size {list(bias.size())} "
                "instead")
    in_size = list(input.size())
    size2d = in_size[:2] + _as_2d(in_size[2:], dims, 1)
    if input.numel() == 0 and in_size[0] != 0 and in_size[1] != 0:
        raise RuntimeError("Only zero batch or zero channel inputs are supported, but got "
                           f"input shape: {size2d}")
    # slow_conv_transpose2d_shape_check, on the 2D view.
    k2, s2, d2 = _as_2d(ws[2:], dims, 1), _as_2d(stride, dims, 1), _as_2d(dilation, dims, 1)
    p2, op2 = _as_2d(padding, dims, 0), _as_2d(output_padding, dims, 0)
    if _any_below(k2, 1):
        raise RuntimeError(
            f"kernel size should be greater than zero, but got {_pairs('kernel', k2)}")
    if _any_below(d2, 1):
        raise RuntimeError("dilation should be greater than zero, but got "
                           f"dilation_height: {d2[0]}, dilation_width: {d2[1]}")
    for i in range(2):
        if op2[i] >= s2[i] and op2[i] >= d2[i]:
            raise RuntimeError(
                "output padding must be smaller than either stride or dilation, but got "
                f"{_pairs('output_padding', op2)} {_pairs('stride', s2)} "
                f"{_pairs('dilation', d2)}")
    if weight.numel() == 0:
        raise RuntimeError("non-empty 2D or 4D weight tensor expected, but got: "
                           f"{ws[:2] + k2}")
    in2 = size2d[2:]
    out2 = [(in2[i] - 1) * s2[i] - 2 * p2[i] + d2[i] * (k2[i] - 1) + 1 + op2[i]
            for i in range(2)]
    if _any_below(out2, 1):
        raise RuntimeError(
            f"Given input size per channel: ({in2[0]} x {in2[1]}). Calculated output size per "
            f"channel: ({out2[0]} x {out2[1]}). Output size is too small")
    for other, name in ((weight, "weight"), (bias, "bias")):
        if other is not None:
            if other.dtype != input.dtype or other.device != input.device:
                raise RuntimeError(f"Input type ({_type_name(input)}) and {name} type "
                                   f"({_type_name(other)}) should be the same")
    if input.dtype != torch.float32 and input.dtype != torch.float64 and \
            input.dtype != torch.bfloat16 and input.dtype != torch.float16:
        name = _type_name(input).split(".")[-1][:-len("Tensor")]  # "Long", as AT_DISPATCH
        raise NotImplementedError(f"\"conv_transpose{dims}d\" not implemented for '{name}' "
                                  "(convext supports float32, float64, bfloat16 and float16)")
    return stride, padding, output_padding, dilation


def _autocast(tensors, device_type):
    """torch.autocast's cast for ops on its lower-precision list (F.conv_transpose*
    are): floating tensors on that device, float64 excepted, to the autocast
    dtype. The casts are autograd-visible: gradients reach float32 leaves."""
    dtype = torch.get_autocast_dtype(device_type)
    return [t.to(dtype) if t is not None and t.is_floating_point() and t.dtype != torch.float64
            and t.device.type == device_type else t for t in tensors]


def _channels_last(input: Tensor, weight: Tensor, dims: int) -> bool:
    """Whether torch's result is channels_last (the input or the weight is)."""
    if not torch.jit.is_scripting() and not torch.jit.is_tracing():
        return _out_format(input, weight, dims) is torch.channels_last
    # TorchScript has no suggest_memory_format (and under torch.jit.trace the
    # sizes it reads are tensors): the strides' plain reading.
    return dims == 2 and (
        (not input.is_contiguous() and input.is_contiguous(memory_format=torch.channels_last))
        or (not weight.is_contiguous() and weight.is_contiguous(memory_format=torch.channels_last)))


def _checked(input: Tensor, weight: Tensor, bias: Optional[Tensor], stride: List[int],
             padding: List[int], output_padding: List[int], dilation: List[int], groups: int,
             dims: int) -> Tuple[List[int], List[int], List[int], List[int], List[int]]:
    """_check's lists, then the output size (the op's input_size)."""
    stride, padding, output_padding, dilation = _check(
        input, weight, bias, stride, padding, output_padding, dilation, groups, dims)
    output_size = [input.size(0), weight.size(1) * groups]
    for i in range(dims):
        output_size.append((input.size(i + 2) - 1) * stride[i] - 2 * padding[i]
                           + dilation[i] * (weight.size(i + 2) - 1) + 1 + output_padding[i])
    return stride, padding, output_padding, dilation, output_size


@torch.jit.unused
def _checked_untraced(input: Tensor, weight: Tensor, bias: Optional[Tensor], stride: List[int],
                      padding: List[int], output_padding: List[int], dilation: List[int],
                      groups: int, dims: int
                      ) -> Tuple[List[int], List[int], List[int], List[int], List[int]]:
    """_checked under torch.jit.trace. There sizes are traced tensors, which
    the op's SymInt[] output size cannot record: the checks and the size run
    on plain ints, the trace keeps this output size (one TracerWarning says
    so) and the op rejects an input of another size."""
    state = torch._C._get_tracing_state()
    torch._C._set_tracing_state(None)
    try:
        result = _checked(input, weight, bias, stride, padding, output_padding, dilation, groups,
                          dims)
    finally:
        torch._C._set_tracing_state(state)
    warnings.warn(torch.jit.TracerWarning(
        f"convext.conv_transpose{dims}d: the trace keeps this call's output size "
        f"{result[4]}; inputs of another size raise"))
    return result


def _transpose(input: Tensor, weight: Tensor, bias: Optional[Tensor], stride: List[int],
               padding: List[int], output_padding: List[int], groups: int, dilation: List[int],
               dims: int) -> Tensor:
    """The transposed conv once arguments are parsed; TorchScript compiles it
    for the modules (see modules.py)."""
    if not torch.jit.is_scripting():
        if torch.is_autocast_enabled(input.device.type):
            input, weight, bias = _autocast((input, weight, bias), input.device.type)
    input, batched = _as_batched(input, dims, f"conv_transpose{dims}d")
    traced = False
    if not torch.jit.is_scripting():
        traced = torch.jit.is_tracing()
    if traced:
        stride, padding, output_padding, dilation, output_size = _checked_untraced(
            input, weight, bias, stride, padding, output_padding, dilation, groups, dims)
    else:
        stride, padding, output_padding, dilation, output_size = _checked(
            input, weight, bias, stride, padding, output_padding, dilation, groups, dims)
    # torch's result is channels_last when the input or the weight is; the op
    # follows its first argument (the smaller tensor here): convert that one.
    channels_last = _channels_last(input, weight, dims)
    # The op's grad_output must have the size the conv formula gives for the
    # output size: the input's, when output_padding < stride. output_padding
    # >= stride (allowed when < dilation) makes that output_padding // stride
    # positions more, at the end, where the input is zero-padded.
    pad: List[int] = []  # F.pad lists the last dim first
    extra = False
    for i in range(dims):
        pad = [0, output_padding[i] // stride[i]] + pad
        extra = extra or output_padding[i] >= stride[i]
    if extra:
        input = F.pad(input, pad)
    if channels_last:
        input = input.contiguous(memory_format=torch.channels_last)
    # The op adds the bias before it rounds the result, once, as torch does
    # (adding it to a rounded half-type result would round twice).
    if dims == 1:
        out = torch.ops.convext.conv1d_grad_input(input, weight, output_size, stride, padding,
                                                  dilation, groups, bias)
    else:
        out = torch.ops.convext.conv2d_grad_input(input, weight, output_size, stride, padding,
                                                  dilation, groups, bias)
    return out if batched else out.squeeze(0)


def _conv_transpose(input, weight, bias, stride, padding, output_padding, groups, dilation,
                    dims):
    """Parses arguments as torch's argument parser does (Python only)."""
    if has_torch_function_variadic(input, weight, bias):
        fn = conv_transpose1d if dims == 1 else conv_transpose2d
        return handle_torch_function(fn, (input, weight, bias), input, weight, bias,
                                     stride=stride, padding=padding,
                                     output_padding=output_padding, groups=groups,
                                     dilation=dilation)
    fn = f"conv_transpose{dims}d"
    if not isinstance(input, torch.Tensor) or not isinstance(weight, torch.Tensor):
        raise TypeError(f"{fn}(): argument 'input' and 'weight' must be Tensor")
    if isinstance(padding, str):  # torch's argument parser wants ints here
        raise TypeError(f"{fn}(): argument 'padding' must be tuple of ints, not str")
    return _transpose(input, weight, bias, _int_list(stride, "stride", dims, fn),
                      _int_list(padding, "padding", dims, fn),
                      _int_list(output_padding, "output_padding", dims, fn),
                      _as_int(groups, "groups", fn), _int_list(dilation, "dilation", dims, fn),
                      dims)


@parsed_like_conv_transpose
def conv_transpose1d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1):
    """Drop-in for torch.nn.functional.conv_transpose1d."""
    return _conv_transpose(input, weight, bias, stride, padding, output_padding, groups,
                           dilation, 1)


@parsed_like_conv_transpose
def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1):
    """Drop-in for torch.nn.functional.conv_transpose2d."""
    return _conv_transpose(input, weight, bias, stride, padding, output_padding, groups,
                           dilation, 2)
