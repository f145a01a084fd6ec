"""ONNX export: while torch.onnx.export(..., dynamo=True) traces a model,
convext's ops take the form of their ATen equivalents, which the exporter
translates to standard ONNX nodes: conv -> Conv, grad_input (a transposed
convolution) -> ConvTranspose, grad_bias -> ReduceSum. No argument is needed
from the user.

Why here: the exporter looks custom ops up in a registry it builds inside
torch.onnx.export, which only its custom_translation_table argument extends.
But it re-traces the exported program (run_decompositions) through the ops'
Autograd kernel, which is convext's own (_autograd.py) and asks this module.
Only traced (fake) tensors take the ATen form: a model run on real tensors
during export (e.g. verify=True) still computes with convext's kernels.
"""
import sys

import torch
from torch._subclasses.fake_tensor import is_fake

aten = torch.ops.aten


def exporting(args):
    # The module check keeps this cheap on every op call: torch.onnx's
    # exporter is imported lazily, by torch.onnx.export itself.
    if "torch.onnx._internal.exporter._flags" not in sys.modules:
        return False
    return torch.onnx.is_in_onnx_export() and any(
        isinstance(a, torch.Tensor) and is_fake(a) for a in args)


def _params(stride, padding, dilation, dims):
    from ._ops import _broadcast
    return [_broadcast(p, dims) for p in (stride, padding, dilation)]


def _conv(dims):
    def form(input, weight, bias, stride, padding, dilation, groups):
        stride, padding, dilation = _params(stride, padding, dilation, dims)
        return aten.convolution(input, weight, bias, stride, padding, dilation, False,
                                [0] * dims, groups)
    return form


def _grad_input(dims):
    def form(grad_output, weight, input_size, stride, padding, dilation, groups, bias=None):
        stride, padding, dilation = _params(stride, padding, dilation, dims)
        # The rows or columns at the end that no output position reached.
        output_padding = [
            input_size[2 + i] - ((grad_output.shape[2 + i] - 1) * stride[i] - 2 * padding[i]
                                 + dilation[i] * (weight.shape[2 + i] - 1) + 1)
            for i in range(dims)]
        return aten.convolution(grad_output, weight, bias, stride, padding, dilation, True,
                                output_padding, groups)
    return form


def _not_exportable(name):
    def form(*args):
        raise NotImplementedError(
            f"convext::{name} (a weight gradient, found only in training graphs) has no "
            "ONNX export; export the model in eval mode, without its backward")
    return form


def _grad_bias(grad_output):
    return grad_output.sum([d for d in range(grad_output.dim()) if d != 1])


FORMS = {"conv_grad_bias": _grad_bias}
for _dims in (1, 2):
    FORMS[f"conv{_dims}d"] = _conv(_dims)
    FORMS[f"conv{_dims}d_grad_input"] = _grad_input(_dims)
    FORMS[f"conv{_dims}d_grad_weight"] = _not_exportable(f"conv{_dims}d_grad_weight")
