"""The nhwc_staged path (csrc/ops/cpu/nhwc_conv_cpu.cpp): a forward (or
grad_input) whose source, input (grad_output), is NCHW, float32 or bfloat16,
groups 1, a 2D kernel and at least 512 result pixels per image is staged a
few images at a time with its channels innermost, then run through the
channels-last indirect GEMM, which stores into the NCHW result (grad_input:
per stride phase, every other pixel). grad_weight on small images stages
grad_output and input whole and transposes the channels-last weight it
computes. Values against torch in float64 (forward and the gradients), the
paths the selector reports (rules in csrc/ops/cpu/conv_path.h), and the
layouts of the source the staging reads."""
import pytest
import torch
import torch.nn.functional as F

import convext
from convext import _C

from conftest import ConvCase, assert_close_to_torch, case_id, dtype_id, staged_grad_weight

BF16_IGEMM = "bf16" in convext.cpu_isa() or "amx" in convext.cpu_isa()

CASES = [
    # 3 images, 2 staged at a time (scratch: half the output), the last alone
    ConvCase(2, 3, 32, 48, (24, 25), (3, 3), padding=1),
    # odd channel count (a bfloat16 pair tail), stride 2: one image at a time
    ConvCase(2, 2, 37, 40, (48, 50), (3, 3), stride=2, padding=1),
    ConvCase(2, 2, 26, 50, (23, 24), (3, 3), dilation=2, padding="same"),
    # stride > kernel: input rows no tap reads
    ConvCase(2, 2, 30, 40, (70, 75), (2, 2), stride=3, padding=1),
    # non-square kernel and padding, no bias, one image
    ConvCase(2, 1, 64, 64, (20, 30), (3, 5), padding=(1, 2), bias=False),
    # small images: grad_weight staged (float32 too), forward and grad_input not
    ConvCase(2, 2, 48, 40, (12, 14), (3, 3), padding=1),
    ConvCase(2, 3, 40, 56, (7, 9), (1, 1)),  # 1x1: no weight transpose
]
def paths(x, w, case):
    """(forward, grad_input, grad_weight) paths, grad_output NCHW."""
    st, pd, dl, g = case.op_params()
    if isinstance(case.padding, str):
        pd = [d * (k - 1) // 2 for d, k in zip(dl, case.kernel)]
    out = F.conv2d(x, w, stride=st, padding=pd, dilation=dl)
    return (_C.cpu_path("conv2d", x, w, [], st, pd, dl, g),
            _C.cpu_path("conv2d_grad_input", out, w, list(x.shape), st, pd, dl, g),
            _C.cpu_path("conv2d_grad_weight", out, x, list(w.shape), st, pd, dl, g))


def expected_paths(x, out, case):
    """Which of (forward, grad_input, grad_weight) take nhwc_staged, by the
    rules of conv_path.h."""
    dtype = x.dtype
    igemm = dtype == torch.float32 or BF16_IGEMM
    st = case.stride if isinstance(case.stride, tuple) else (case.stride,) * 2
    kernel_2d = all(k > 1 for k in case.kernel)
    one_tap = all(k <= s for k, s in zip(case.kernel, st))
    out_px, in_px = out.shape[2] * out.shape[3], x.shape[2] * x.shape[3]
    fwd = igemm and kernel_2d and out_px >= 512
    gi = igemm and kernel_2d and in_px >= 512 and (dtype == torch.bfloat16 or not one_tap)
    return fwd, gi, staged_grad_weight(dtype, case.C, case.OC, case.kernel, out_px)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=dtype_id)
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_matches_torch(case, dtype):
    x, w, b = case.make(dtype)
    got = paths(x, w, case)
    want = expected_paths(x, F.conv2d(x, w, **case.conv_kwargs), case)
    assert tuple(p == "nhwc_staged" for p in got) == want, got
    out = assert_close_to_torch(2, x, w, b, **case.conv_kwargs)
    assert out.is_contiguous()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=dtype_id)
@pytest.mark.parametrize("view", ["width_strided", "transposed", "channel_slice"])
def test_strided_inputs(view, dtype):
    """Inputs that are not contiguous NCHW, read through their strides: every
    other column, H and W swapped in memory, and a slice of the channels."""
    case = ConvCase(2, 2, 24, 32, (26, 24), (3, 3), padding=1)
    x, w, b = case.make(dtype)
    if view == "width_strided":
        big = torch.zeros(2, 24, 26, 48, dtype=dtype)
        big[..., ::2] = x
        x = big[..., ::2]
    elif view == "transposed":
        x = x.transpose(2, 3).contiguous().transpose(2, 3)
    else:
        big = torch.zeros(2, 40, 26, 24, dtype=dtype)
        big[:, 8:32] = x
        x = big[:, 8:32]
    assert not x.is_contiguous() and x.stride(1) != 1
    if dtype == torch.float32 or BF16_IGEMM:
        assert paths(x, w, case)[0] == "nhwc_staged"
    assert_close_to_torch(2, x, w, b, padding=1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=dtype_id)
@pytest.mark.parametrize("stride", [1, 2])
def test_grad_input_strided_grad_output(stride, dtype):
    """grad_input staged from a width-strided grad_output, with the bias the
    op takes for transposed convs, against float64."""
    gen = torch.Generator().manual_seed(1)
    OH = 24 if stride == 1 else 12
    go64 = torch.randn(3, 40, OH, 26, generator=gen, dtype=torch.float64)
    w64 = torch.randn(40, 32, 3, 3, generator=gen, dtype=torch.float64)
    b64 = torch.randn(32, generator=gen, dtype=torch.float64)
    go64, w64, b64 = go64.to(dtype).double(), w64.to(dtype).double(), b64.to(dtype).double()
    size = [3, 32, (OH - 1) * stride + 1, (26 - 1) * stride + 1]
    big = torch.zeros(3, 40, OH, 52, dtype=dtype)
    big[..., ::2] = go64.to(dtype)
    go = big[..., ::2]
    args = (size, [stride] * 2, [1, 1], [1, 1], 1)
    if dtype == torch.float32 or BF16_IGEMM:
        assert _C.cpu_path("conv2d_grad_input", go, w64.to(dtype), *args) == "nhwc_staged"
    got = torch.ops.convext.conv2d_grad_input(go, w64.to(dtype), *args, b64.to(dtype))
    ref = torch.ops.aten.convolution_backward(
        go64, torch.empty(size, dtype=torch.float64), w64, None, [stride] * 2, [1, 1], [1, 1],
        False, [0, 0], 1, [True, False, False])[0] + b64.view(1, -1, 1, 1)
    magnitude = torch.ops.aten.convolution_backward(
        go64.abs(), torch.empty(size, dtype=torch.float64), w64.abs(), None, [stride] * 2,
        [1, 1], [1, 1], False, [0, 0], 1, [True, False, False])[0] + b64.abs().view(1, -1, 1, 1)
    eps = 2.0 ** -8 if dtype == torch.bfloat16 else 2.0 ** -24
    tol = eps * ref.abs() + 400 * 2.0 ** -24 * magnitude
    assert ((got.double() - ref).abs() <= tol).all()


def test_where_it_applies():
    """Small images, 1D kernels, groups, channels-last inputs and float64 stay
    on their paths."""
    def path(x, w, padding=1, groups=1):
        return _C.cpu_path("conv2d", x, w, [], [1, 1], [padding, padding], [1, 1], groups)

    x, w = torch.randn(2, 32, 24, 24), torch.randn(48, 32, 3, 3)
    assert path(x, w) == "nhwc_staged"
    assert path(torch.randn(2, 32, 20, 20), w) != "nhwc_staged"  # 400 pixels an image
    assert path(x, torch.randn(48, 32, 1, 3), 0) != "nhwc_staged"  # KH = 1
    assert path(x, torch.randn(48, 16, 3, 3), 1, 2) != "nhwc_staged"  # groups
    assert path(x.contiguous(memory_format=torch.channels_last), w) == "nhwc"
    assert path(x.double(), w.double()) != "nhwc_staged"
    assert path(x.half(), w.half()) != "nhwc_staged"


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=dtype_id)
def test_empty_batch(dtype):
    x, w = torch.randn(0, 32, 24, 24, dtype=dtype), torch.randn(48, 32, 3, 3, dtype=dtype)
    out = convext.conv2d(x, w, padding=1)
    assert out.shape == (0, 48, 24, 24)
