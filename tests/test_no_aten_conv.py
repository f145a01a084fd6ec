"""No aten convolution / GEMM op runs inside convext's forward or backward
(double backward included): every op the dispatcher sees is recorded by the
profiler, and none may look like a convolution or a matrix product unless it
is convext's own."""
import pytest
import torch
import torch.nn.functional as F

import convext

FORBIDDEN = ("convolution", "conv2d", "conv1d", "mkldnn", "mm", "addmm", "bmm", "matmul",
             "im2col", "unfold", "cudnn")


def offending_ops(workload):
    """Runs workload() under the CPU profiler; returns the names of recorded
    events that look like an aten convolution or GEMM."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        workload()
    names = {event.name for event in prof.events()}
    return sorted(name for name in names if "convext" not in name
                  and any(word in name.lower() for word in FORBIDDEN))


def _requires_grad(*tensors):
    return [t.requires_grad_(True) for t in tensors]


def _double_backward(out, inputs):
    grads = torch.autograd.grad(out.square().sum(), inputs, create_graph=True)
    sum(g.square().sum() for g in grads).backward()


def convext_workload():
    x, w, b = _requires_grad(torch.randn(2, 4, 9, 8), torch.randn(6, 4, 3, 2), torch.randn(6))
    _double_backward(convext.conv2d(x, w, b, stride=(2, 1), padding=1, dilation=(1, 2)),
                     [x, w, b])
    xd, wd = _requires_grad(torch.randn(2, 4, 8, 8).contiguous(memory_format=torch.channels_last),
                            torch.randn(8, 1, 4, 4))
    _double_backward(convext.conv2d(xd, wd, padding="same", groups=4), [xd, wd])  # depthwise
    x1, w1 = _requires_grad(torch.randn(2, 4, 30, dtype=torch.bfloat16),
                            torch.randn(5, 4, 4, dtype=torch.bfloat16))
    _double_backward(convext.conv1d(x1, w1, stride=2, padding="valid").float(), [x1, w1])
    xh, wh = _requires_grad(torch.randn(4, 12, dtype=torch.float16),
                            torch.randn(4, 1, 3, dtype=torch.float16))
    convext.conv1d(xh, wh, padding=1, groups=4).float().sum().backward()
    for dims, padding_mode in ((2, "reflect"), (1, "circular")):
        module = getattr(convext, f"Conv{dims}d")(3, 6, 3, padding=1, padding_mode=padding_mode)
        module(torch.randn(2, 3, *(7,) * dims, requires_grad=True)).sum().backward()


def test_convext_runs_no_aten_convolution_or_gemm():
    assert offending_ops(convext_workload) == []


def test_convext_workload_runs_convext_ops():
    """The workload above really goes through convext's ops, backward ops included."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        convext_workload()
    names = {event.name for event in prof.events()}
    for op in ("conv1d", "conv2d", "conv1d_grad_input", "conv2d_grad_input",
               "conv1d_grad_weight", "conv2d_grad_weight", "conv_grad_bias"):
        assert f"convext::{op}" in names


@pytest.mark.parametrize("workload", [
    lambda: F.conv2d(torch.randn(1, 2, 5, 5), torch.randn(3, 2, 3, 3)),
    lambda: F.conv1d(torch.randn(1, 2, 5), torch.randn(3, 2, 3)),
    lambda: F.conv2d(torch.randn(1, 2, 5, 5, dtype=torch.float64),
                     torch.randn(2, 1, 3, 3, dtype=torch.float64), groups=2),
    lambda: torch.nn.Conv2d(2, 3, 3)(torch.randn(1, 2, 5, 5)),
    lambda: torch.randn(3, 4) @ torch.randn(4, 5),
    lambda: torch.addmm(torch.randn(3), torch.randn(2, 4), torch.randn(4, 3)),
    lambda: F.unfold(torch.randn(1, 2, 5, 5), 3),
], ids=["F.conv2d", "F.conv1d", "F.conv2d_depthwise_f64", "nn.Conv2d", "matmul", "addmm",
        "unfold"])
def test_detector_catches_torch_convolution_and_gemm(workload):
    """The same detector trips on torch's own convolution and GEMM ops."""
    assert offending_ops(workload) != []
