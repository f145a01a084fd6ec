"""Python side of the custom ops: fake (meta) kernels for tracing and the
autograd formulas, reverse (backward) and forward (jvp) mode, registered with
the batching rules of _vmap.py through _autograd.py. The backward ops are
themselves differentiable, in terms of convext's own ops, so double backward
and forward-over-reverse never leave convext:

  y  = conv(x, w) + b
  gx = grad_input(gy, w) + c -> d/dgy: conv(., w),    d/dw: grad_weight(gy, .),
                                d/dc: grad_bias (c: the optional bias of a transposed conv)
  gw = grad_weight(gy, x)    -> d/dgy: conv(x, .),    d/dx: grad_input(gy, .)
  gb = grad_bias(gy)         -> d/dgy: broadcast

Each op is linear in each tensor argument, so a tangent is the op itself
applied to one tangent at a time (product rule): dy = conv(dx, w) + conv(x, dw)
+ db, d(gx) = grad_input(dgy, w) + grad_input(gy, dw), and so on.
"""
import torch
from torch._prims_common import suggest_memory_format

from . import _extension  # noqa: F401  (registers the ops; must come first)
from . import _autograd, _vmap

ops = torch.ops.convext


def _out_format(a, b, dims):
    # Must match output_memory_format() in csrc/ops/conv_params.cpp.
    if dims == 2 and a.shape[1] != 0 and torch.channels_last in (suggest_memory_format(a),
                                                                 suggest_memory_format(b)):
        return torch.channels_last
    return torch.contiguous_format


def _check_devices(*tensors):
    # A meta operand sends the call here, to the fake kernel, whatever the
    # other operands' device; torch's message for the mismatch.
    first = tensors[0].device
    for t in tensors[1:]:
        torch._check(t is None or t.device == first,
                     lambda: f"Tensor on device {t.device} is not on the expected device {first}!")


def _broadcast(param, dims):
    # The op, like ATen, lets a 1-element list stand for every dim.
    return list(param) * dims if len(param) == 1 else list(param)


def _out_size(size, k, s, p, d):
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


def _forward_op(dims):
    return getattr(ops, f"conv{dims}d")


def _grad_input_op(dims):
    return getattr(ops, f"conv{dims}d_grad_input")


def _grad_weight_op(dims):
    return getattr(ops, f"conv{dims}d_grad_weight")


def _register(dims):
    name = f"convext::conv{dims}d"

    @torch.library.register_fake(name)
    def _conv_fake(input, weight, bias, stride, padding, dilation, groups):
        _check_devices(input, weight, bias)
        torch._check(input.dim() == dims + 2 and weight.dim() == dims + 2,
                     lambda: f"{name}: expected {dims + 2}D input and weight")
        torch._check(groups > 0, lambda: "non-positive groups is not supported")
        torch._check(weight.shape[0] % groups == 0, lambda: (
            f"Given groups={groups}, expected weight to be divisible by {groups} at "
            f"dimension 0, but got weight of size [{list(weight.shape)}] instead"))
        torch._check(input.shape[1] == weight.shape[1] * groups, lambda: (
            f"Given groups={groups}, weight of size {list(weight.shape)}, expected "
            f"input{list(input.shape)} to have {weight.shape[1] * groups} channels, "
            f"but got {input.shape[1]} channels instead"))
        stride, padding, dilation = (_broadcast(p, dims) for p in (stride, padding, dilation))
        spatial = [_out_size(input.shape[2 + i], weight.shape[2 + i], stride[i], padding[i],
                             dilation[i]) for i in range(dims)]
        for o in spatial:
            torch._check(o > 0, lambda: "Kernel size can't be greater than actual input size")
        # zero input channels: torch's (N, 0, ...) result
        out_channels = 0 if input.shape[1] == 0 else weight.shape[0]
        return torch.empty((input.shape[0], out_channels, *spatial), dtype=input.dtype,
                           device=input.device,
                           memory_format=_out_format(input, weight, dims))

    @torch.library.register_fake(f"{name}_grad_input")
    def _grad_input_fake(grad_output, weight, input_size, stride, padding, dilation, groups,
                         bias=None):
        _check_devices(grad_output, weight, bias)
        return torch.empty(input_size, dtype=grad_output.dtype, device=grad_output.device,
                           memory_format=_out_format(grad_output, grad_output, dims))

    @torch.library.register_fake(f"{name}_grad_weight")
    def _grad_weight_fake(grad_output, input, weight_size, stride, padding, dilation, groups):
        _check_devices(grad_output, input)
        return torch.empty(weight_size, dtype=grad_output.dtype, device=grad_output.device,
                           memory_format=_out_format(input, grad_output, dims))

    conv, grad_input, grad_weight = _forward_op(dims), _grad_input_op(dims), _grad_weight_op(dims)

    # forward: (input, weight, bias, stride, padding, dilation, groups)
    def conv_setup(ctx, inputs, output):
        input, weight, bias, *params = inputs
        ctx.save_for_backward(input, weight)
        ctx.save_for_forward(input, weight)
        ctx.params = params
        ctx.has_bias = bias is not None
        ctx.output_shape = output.shape

    def conv_backward(ctx, grad):
        input, weight = ctx.saved_tensors
        gi = gw = gb = None
        if ctx.needs_input_grad[0]:
            gi = grad_input(grad, weight, input.shape, *ctx.params)
        if ctx.needs_input_grad[1]:
            gw = grad_weight(grad, input, weight.shape, *ctx.params)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            # zero input channels: the (N, 0, ...) output does not use the bias
            gb = ops.conv_grad_bias(grad) if input.shape[1] else grad.new_zeros(weight.shape[0])
        return gi, gw, gb, None, None, None, None

    def conv_jvp(ctx, d_input, d_weight, d_bias, *_):
        input, weight = ctx.saved_tensors
        out = _product_rule(lambda x, w: conv(x, w, None, *ctx.params),
                            input, weight, d_input, d_weight)
        if d_bias is None:
            return out
        d_bias = d_bias.reshape(1, -1, *[1] * dims)
        return d_bias.expand(ctx.output_shape) if out is None else out + d_bias

    _autograd.register(f"conv{dims}d", conv_setup, conv_backward, conv_jvp)

    # grad_input: (grad_output, weight, input_size, stride, padding, dilation, groups, bias)
    def grad_input_setup(ctx, inputs, output):
        _backward_op_setup(ctx, inputs[:7], output)
        ctx.has_bias = len(inputs) > 7 and inputs[7] is not None
        ctx.output_shape = output.shape

    def grad_input_backward(ctx, g):
        grad_output, weight = ctx.saved_tensors
        g_go = g_w = g_b = None
        if ctx.needs_input_grad[0]:
            g_go = conv(g, weight, None, *ctx.params)
        if ctx.needs_input_grad[1]:
            g_w = grad_weight(grad_output, g, weight.shape, *ctx.params)
        if ctx.has_bias and ctx.needs_input_grad[7]:
            g_b = ops.conv_grad_bias(g)
        return g_go, g_w, None, None, None, None, None, g_b

    operands_jvp = _backward_op_jvp(grad_input)

    def grad_input_jvp(ctx, d_grad_output, d_weight, *rest):
        out = operands_jvp(ctx, d_grad_output, d_weight)
        d_bias = rest[5] if len(rest) > 5 else None  # after size, stride, ..., groups
        if d_bias is None:
            return out
        d_bias = d_bias.reshape(1, -1, *[1] * dims)
        return d_bias.expand(ctx.output_shape) if out is None else out + d_bias

    _autograd.register(f"conv{dims}d_grad_input", grad_input_setup, grad_input_backward,
                       grad_input_jvp)

    # grad_weight: (grad_output, input, weight_size, stride, padding, dilation, groups)
    def grad_weight_backward(ctx, g):
        grad_output, input = ctx.saved_tensors
        g_go = g_x = None
        if ctx.needs_input_grad[0]:
            g_go = conv(input, g, None, *ctx.params)
        if ctx.needs_input_grad[1]:
            g_x = grad_input(grad_output, g, input.shape, *ctx.params)
        return g_go, g_x, None, None, None, None, None

    _autograd.register(f"conv{dims}d_grad_weight", _backward_op_setup, grad_weight_backward,
                       _backward_op_jvp(grad_weight))


# The backward ops: op(grad_output, weight or input, size, stride, padding, dilation, groups)
# (grad_input's bias, after these, is handled by its own formulas).
def _backward_op_setup(ctx, inputs, output):
    ctx.save_for_backward(*inputs[:2])
    ctx.save_for_forward(*inputs[:2])
    ctx.size, ctx.params = inputs[2], inputs[3:]


def _backward_op_jvp(op):
    def jvp(ctx, d_grad_output, d_other, *_):
        return _product_rule(lambda a, b: op(a, b, ctx.size, *ctx.params),
                             *ctx.saved_tensors, d_grad_output, d_other)
    return jvp


def _product_rule(f, a, b, da, db):
    """Tangent of f(a, b) for f linear in each argument: f(da, b) + f(a, db),
    leaving out the terms whose tangent is absent (None)."""
    out = None if da is None else f(da, b)
    if db is not None:
        term = f(a, db)
        out = term if out is None else out + term
    return out


@torch.library.register_fake("convext::conv_grad_bias")
def _grad_bias_fake(grad_output):
    torch._check(grad_output.dim() >= 2, lambda: "conv_grad_bias: expected at least 2 dims")
    return grad_output.new_empty((grad_output.shape[1],))


def _grad_bias_setup(ctx, inputs, output):
    ctx.shape = inputs[0].shape


def _grad_bias_backward(ctx, g):
    view = [1, -1] + [1] * (len(ctx.shape) - 2)
    return (g.reshape(view).expand(ctx.shape),)


def _grad_bias_jvp(ctx, d_grad_output):
    return ops.conv_grad_bias(d_grad_output)


_autograd.register("conv_grad_bias", _grad_bias_setup, _grad_bias_backward, _grad_bias_jvp)

for _dims in (1, 2):
    _register(_dims)
_vmap.register()
