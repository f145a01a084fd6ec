"""convext.conv_transpose1d / conv_transpose2d: the signature and semantics of
torch.nn.functional.conv_transpose1d / conv_transpose2d.

A transposed convolution is the gradient of a convolution with respect to its
input, so it runs on the stride-phase grad_input op (no kernel of its own):

    conv_transpose(x, w) == conv{d}d_grad_input(x, w, output_size, stride, padding, ...)

with x in the role of grad_output and w (C_in, C_out/groups, k...) in the role
of the forward weight. Gradients and double backward are that op's autograd
formulas. Arguments are checked here, in ATen's order and wording (for the
checks that ATen leaves to its backends, the wording of its portable CPU path,
slow_conv_transpose2d, which float64 takes).
"""
import torch
import torch.nn.functional as F

from ._ops import _out_format, ops
from .functional import _as_batched, _as_int, _int_list

__all__ = ["conv_transpose1d", "conv_transpose2d"]

# torch's names for the spatial dims of a 2D view in its messages.
_HW = ("height", "width")


def _expand(values, name, dims):
    """ATen's expand_param_if_needed."""
    if len(values) == 1:
        return values * dims
    if len(values) != dims:
        raise RuntimeError(
            f"expected {name} to be a single integer value or a list of {dims} values to "
            f"match the convolution dimensions, but got {name}={list(values)}")
    return values


def _as_2d(values, dims, fill):
    """A parameter of a 1D conv as torch sees it on its (N, C, 1, L) view."""
    return [fill] + list(values) if dims == 1 else list(values)


def _pairs(name, values):
    return " ".join(f"{name}_{hw}: {v}" for hw, v in zip(_HW, values))


def _type_name(t):
    return t.type()  # "torch.FloatTensor", as ATen's Tensor::toString()


def _check(input, weight, bias, stride, padding, output_padding, dilation, groups, dims):
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
    if any(p < 0 for p in padding):
        raise RuntimeError("negative padding is not supported")
    if any(p < 0 for p in output_padding):
        raise RuntimeError("negative output_padding is not supported")
    if any(s <= 0 for s in stride):
        raise RuntimeError("non-positive stride is not supported")
    if any(d < 0 for d in dilation):
        raise RuntimeError("dilation should be greater than zero")
    ws = list(weight.shape)
    if weight.dim() != input.dim():
        raise RuntimeError(
            f"Expected {weight.dim()}-dimensional input for {weight.dim()}-dimensional weight "
            f"{ws}, but got {input.dim()}-dimensional input of size {list(input.shape)} instead")
    if ws[0] < groups:
        raise RuntimeError(f"Given groups={groups}, expected weight to be at least {groups} at "
                           f"dimension 0, but got weight of size {ws} instead")
    if ws[0] % groups != 0:
        raise RuntimeError(f"Given groups={groups}, expected weight to be divisible by {groups} "
                           f"at dimension 0, but got weight of size [{ws}] instead")
    if input.shape[1] != ws[0]:
        raise RuntimeError(
            f"Given transposed=1, weight of size {ws}, expected input{list(input.shape)} to "
            f"have {ws[0]} channels, but got {input.shape[1]} channels instead")
    if bias is not None and (bias.dim() != 1 or bias.shape[0] != ws[1] * groups):
        raise RuntimeError(
            f"Given transposed=1, weight of size {ws}, expected bias to be 1-dimensional with "
            f"{ws[1] * groups} elements, but got bias of size {list(bias.shape)} instead")
    size2d = [*input.shape[:2], *_as_2d(input.shape[2:], dims, 1)]
    if input.numel() == 0 and input.shape[0] != 0 and input.shape[1] != 0:
        raise RuntimeError("Only zero batch or zero channel inputs are supported, but got "
                           f"input shape: {size2d}")
    # slow_conv_transpose2d_shape_check, on the 2D view.
    k2, s2, d2 = _as_2d(ws[2:], dims, 1), _as_2d(stride, dims, 1), _as_2d(dilation, dims, 1)
    p2, op2 = _as_2d(padding, dims, 0), _as_2d(output_padding, dims, 0)
    if any(k <= 0 for k in k2):
        raise RuntimeError(
            f"kernel size should be greater than zero, but got {_pairs('kernel', k2)}")
    if any(d <= 0 for d in d2):
        raise RuntimeError("dilation should be greater than zero, but got "
                           f"dilation_height: {d2[0]}, dilation_width: {d2[1]}")
    if not all(o < s or o < d for o, s, d in zip(op2, s2, d2)):
        raise RuntimeError(
            "output padding must be smaller than either stride or dilation, but got "
            f"{_pairs('output_padding', op2)} {_pairs('stride', s2)} {_pairs('dilation', d2)}")
    if weight.numel() == 0:
        raise RuntimeError("non-empty 2D or 4D weight tensor expected, but got: "
                           f"{[*ws[:2], *k2]}")
    in2 = size2d[2:]
    out2 = [(i - 1) * s - 2 * p + d * (k - 1) + 1 + o
            for i, s, p, d, k, o in zip(in2, s2, p2, d2, k2, op2)]
    if any(o < 1 for o in out2):
        raise RuntimeError(
            f"Given input size per channel: ({in2[0]} x {in2[1]}). Calculated output size per "
            f"channel: ({out2[0]} x {out2[1]}). Output size is too small")
    for name, other in (("weight", weight), ("bias", bias)):
        if other is not None and (other.dtype != input.dtype or other.device != input.device):
            raise RuntimeError(f"Input type ({_type_name(input)}) and {name} type "
                               f"({_type_name(other)}) should be the same")
    if input.dtype not in (torch.float32, torch.float64, torch.bfloat16, torch.float16):
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


def _conv_transpose(input, weight, bias, stride, padding, output_padding, groups, dilation,
                    dims):
    fn = f"conv_transpose{dims}d"
    if not isinstance(input, torch.Tensor) or not isinstance(weight, torch.Tensor):
        raise TypeError(f"{fn}(): argument 'input' and 'weight' must be Tensor")
    if torch.is_autocast_enabled(input.device.type):
        input, weight, bias = _autocast((input, weight, bias), input.device.type)
    if isinstance(padding, str):  # torch's argument parser wants ints here
        raise TypeError(f"{fn}(): argument 'padding' must be tuple of ints, not str")
    input, batched = _as_batched(input, dims, fn)
    groups = _as_int(groups, "groups", fn)
    stride, padding, output_padding, dilation = _check(
        input, weight, bias, _int_list(stride, "stride", dims, fn),
        _int_list(padding, "padding", dims, fn),
        _int_list(output_padding, "output_padding", dims, fn),
        _int_list(dilation, "dilation", dims, fn), groups, dims)
    # torch's result is channels_last when the input or the weight is; the op
    # follows its first argument (the smaller tensor here): convert that one.
    channels_last = _out_format(input, weight, dims) is torch.channels_last
    # The op's grad_output must have the size the conv formula gives for the
    # output size: the input's, when output_padding < stride. output_padding
    # >= stride (allowed when < dilation) makes that output_padding // stride
    # positions more, at the end, where the input is zero-padded.
    spatial = [(i - 1) * s - 2 * p + d * (k - 1) + 1 + o for i, s, p, d, k, o in
               zip(input.shape[2:], stride, padding, dilation, weight.shape[2:], output_padding)]
    extra = [o // s for o, s in zip(output_padding, stride)]
    if any(extra):
        pad = []
        for e in reversed(extra):  # F.pad lists the last dim first
            pad += [0, e]
        input = F.pad(input, pad)
    if channels_last:
        input = input.contiguous(memory_format=torch.channels_last)
    output_size = [input.shape[0], weight.shape[1] * groups, *spatial]
    dtype = input.dtype
    if bias is not None and dtype in (torch.bfloat16, torch.float16):
        # The op rounds its result to dtype, and adding the bias would round
        # again: with cancellation that is far from torch's (fused, singly
        # rounded) result. Compute in float32, round once.
        input, weight, bias = input.float(), weight.float(), bias.float()
    out = getattr(ops, f"conv{dims}d_grad_input")(input, weight, output_size, stride, padding,
                                                  dilation, groups)
    if bias is not None:
        out = (out + bias.view(-1, *([1] * dims))).to(dtype)
    return out if batched else out.squeeze(0)


def conv_transpose1d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1):
    """Drop-in for torch.nn.functional.conv_transpose1d."""
    return _conv_transpose(input, weight, bias, stride, padding, output_padding, groups,
                           dilation, 1)


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1):
    """Drop-in for torch.nn.functional.conv_transpose2d."""
    return _conv_transpose(input, weight, bias, stride, padding, output_padding, groups,
                           dilation, 2)
