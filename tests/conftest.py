"""Shared helpers for the convext test-suite.

The reference for every numeric check is torch itself, computed in float64 on
the CPU from the very same (rounded) input values, so that the only difference
left is convext's own arithmetic. Tolerances are derived from the classic
error bound of a dot product: for a reduction of length K accumulated in a
type with unit roundoff u, |error| <= K * u * sum(|a_i| * |b_i|). The
"sum of |a||b|" term is obtained by running the torch reference on the
absolute values of the operands. On top of that the result is rounded once to
the output dtype. See `tolerance`.
"""
import contextlib
import math
import socket
import warnings
from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F

import convext

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() and convext.with_cuda() else [])
FLOAT_DTYPES = [torch.float32, torch.float64, torch.bfloat16, torch.float16]

# Type in which convext accumulates each input dtype (bfloat16/half: float32).
ACCUM_DTYPE = {
    torch.float32: torch.float32,
    torch.float64: torch.float64,
    torch.bfloat16: torch.float32,
    torch.float16: torch.float32,
}

TORCH_FN = {1: F.conv1d, 2: F.conv2d}
CONVEXT_FN = {1: convext.conv1d, 2: convext.conv2d}


def dtype_id(dtype):
    return str(dtype).replace("torch.", "")


def tolerance(ref, abs_ref, reduction, dtype):
    """Element-wise bound on |convext - exact|.

    ref / abs_ref: float64 results of the op on the operands / on their absolute
    values; reduction: the number of products summed per element (plus the bias).
    One ulp of the output dtype (twice the rounding error of the final cast)
    plus the accumulation bound K * eps(accum) * sum|a||b| (eps = 2u, again a
    factor two of margin).
    """
    out_eps = torch.finfo(dtype).eps
    acc_eps = torch.finfo(ACCUM_DTYPE[dtype]).eps
    # below the smallest normal the output's ulp stops shrinking: one
    # subnormal step (tiny * eps) is the floor of the final rounding
    subnormal_ulp = torch.finfo(dtype).tiny * out_eps
    return out_eps * ref.abs() + subnormal_ulp + (reduction + 2) * acc_eps * abs_ref


def assert_within(actual, ref, abs_ref, reduction, dtype, what):
    assert actual.shape == ref.shape, f"{what}: shape {tuple(actual.shape)} != {tuple(ref.shape)}"
    assert actual.dtype == dtype, f"{what}: dtype {actual.dtype} != {dtype}"
    if ref.numel() == 0:
        return
    err = (actual.detach().cpu().double() - ref).abs()
    tol = tolerance(ref, abs_ref, reduction, dtype)
    bad = ~(err <= tol)  # also catches NaN
    if bad.any():
        idx = tuple(bad.nonzero()[0].tolist())
        raise AssertionError(
            f"{what} ({dtype_id(dtype)}): {int(bad.sum())}/{ref.numel()} elements out of "
            f"tolerance; max error {err.max().item():.3e}; first at {idx}: "
            f"got {actual[idx].item():.6e}, expected {ref[idx].item():.6e}, "
            f"tolerance {tol[idx].item():.3e}")


@dataclass(frozen=True)
class ConvCase:
    """One convolution configuration, usable for both libraries. N=None
    means an unbatched input (C, *size)."""
    dims: int
    N: int
    C: int
    OC: int
    size: tuple
    kernel: tuple
    stride: object = 1
    padding: object = 0
    dilation: object = 1
    groups: int = 1
    bias: bool = True

    @property
    def conv_kwargs(self):
        return dict(stride=self.stride, padding=self.padding, dilation=self.dilation,
                    groups=self.groups)

    def op_params(self):
        """(stride, padding, dilation, groups) as the custom ops take them:
        lists of `dims` ints (numeric padding only)."""
        def as_list(v):
            return list(v) * (self.dims if len(v) == 1 else 1) if isinstance(v, (tuple, list)) \
                else [v] * self.dims
        return as_list(self.stride), as_list(self.padding), as_list(self.dilation), self.groups

    def make(self, dtype=torch.float64, device="cpu", seed=0):
        """Random (input, weight, bias); values are drawn in float64 then cast,
        so every dtype sees the same numbers up to rounding."""
        gen = torch.Generator().manual_seed(seed)

        def rand(*shape):
            return torch.randn(*shape, generator=gen, dtype=torch.float64).to(device, dtype)

        x = rand(self.N, self.C, *self.size) if self.N is not None else rand(self.C, *self.size)
        w = rand(self.OC, self.C // self.groups, *self.kernel)
        b = rand(self.OC) if self.bias else None
        return x, w, b


def staged_grad_weight(dtype, C, OC, kernel, out_px, groups=1):
    """Whether an NCHW 2D grad_weight takes nhwc_staged (the rule in
    csrc/ops/cpu/conv_path.h): groups 1, 32+ channels in and out; bfloat16 on
    AMX with at most 1024 output pixels an image, or taps > 1 and >= 256 input
    channels; float32 with taps > 1 and at most 256 pixels."""
    taps = math.prod(kernel)
    if groups != 1 or len(kernel) != 2 or C < 32 or OC < 32:
        return False
    if dtype == torch.bfloat16:
        return "amx" in convext.cpu_isa() and (out_px <= 1024 or (taps > 1 and C >= 256))
    return dtype == torch.float32 and taps > 1 and out_px <= 256


def case_id(case):
    parts = [f"{case.dims}d", f"n{case.N}c{case.C}o{case.OC}",
             "x".join(map(str, case.size)) + "k" + "x".join(map(str, case.kernel))]
    for name in ("stride", "padding", "dilation", "groups"):
        value = getattr(case, name)
        default = 0 if name == "padding" else 1
        if value != default:
            parts.append(f"{name[0]}{value}".replace(" ", ""))
    if not case.bias:
        parts.append("nobias")
    return "-".join(parts)


def _leaf(t):
    """A leaf that requires grad and keeps t's strides (views stay views)."""
    return None if t is None else t.detach().requires_grad_(True)


def conv_and_grads(fn, x, w, b, grad_output, **kwargs):
    """fn(x, w, b, **kwargs) and the gradients w.r.t. (x, w, b) for grad_output
    (a tensor, or a callable building it from the output)."""
    x, w, b = _leaf(x), _leaf(w), _leaf(b)
    out = fn(x, w, b, **kwargs)
    go = grad_output(out) if callable(grad_output) else grad_output
    inputs = [t for t in (x, w, b) if t is not None]
    grads = list(torch.autograd.grad(out, inputs, go)) + ([None] if b is None else [])
    return out, grads, go


def reference(dims, x, w, b, grad_output, torch_fn=None, **kwargs):
    """torch's float64 CPU result and gradients (of TORCH_FN[dims] or
    torch_fn), and the same run on absolute values (the sum of |a||b| per
    element, for the error bound)."""
    torch_fn = torch_fn or TORCH_FN[dims]

    def f64(t):
        return None if t is None else t.detach().cpu().double()

    x64, w64, b64, go64 = f64(x), f64(w), f64(b), f64(grad_output)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch warns for even 'same' kernels
        ref = conv_and_grads(torch_fn, x64, w64, b64, go64, **kwargs)
        absref = conv_and_grads(torch_fn, x64.abs(), w64.abs(),
                                None if b64 is None else b64.abs(), go64.abs(), **kwargs)
    return ref[:2], absref[:2]


def default_grad_output(out):
    gen = torch.Generator().manual_seed(1234)
    return torch.randn(out.shape, generator=gen, dtype=torch.float64).to(out.device, out.dtype)


def assert_close_to_torch(dims, x, w, b=None, grad_output=default_grad_output, fn=None,
                          torch_fn=None, **kwargs):
    """Runs convext's conv{dims}d (or fn) and torch's float64 reference (F.conv{dims}d
    or torch_fn) on (x, w, b) with kwargs (stride, padding, ...) and compares the
    output and the gradients of input, weight and bias. Returns the output."""
    out, ours, go = conv_and_grads(fn or CONVEXT_FN[dims], x, w, b, grad_output, **kwargs)
    (ref_out, ref_grads), (abs_out, abs_grads) = reference(dims, x, w, b, go, torch_fn, **kwargs)
    k = reduction_length(x, w, ref_out, kwargs.get("groups", 1))
    assert_within(out, ref_out, abs_out, k, x.dtype, "output")
    for name, g, r, a in zip(("grad_input", "grad_weight", "grad_bias"), ours, ref_grads,
                             abs_grads):
        if r is None:
            assert g is None, f"{name}: expected no gradient"
        else:
            assert_within(g, r, a, k, x.dtype, name)
    return out


def reduction_length(x, w, ref_out, groups):
    """Longest sum behind any element of the output or of a gradient:
    forward C/g*taps, grad_input OC/g*taps, grad_weight and grad_bias N*spatial."""
    taps = math.prod(w.shape[2:])
    batched = ref_out.dim() == w.dim()
    per_out_channel = ref_out.numel() // max(ref_out.shape[1 if batched else 0], 1)
    return max(w.shape[1] * taps, (w.shape[0] // groups) * taps, per_out_channel, 1)


def assert_same_error(torch_call, convext_call):
    """Both calls raise; same exception type and exactly the same message."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            torch_call()
        except Exception as e:  # noqa: BLE001 - we compare whatever torch raises
            expected = e
        else:
            pytest.fail("torch did not raise; the test case is wrong")
    with pytest.raises(Exception) as info:
        convext_call()
    got = info.value
    assert type(got) is type(expected), (
        f"exception type {type(got).__name__} != torch's {type(expected).__name__}: {got}")
    assert str(got) == str(expected)


@contextlib.contextmanager
def no_warnings_about_same():
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Using padding='same'")
        yield


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(params=DEVICES)
def device(request):
    return request.param


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture
def single_thread():
    """For tests that make hundreds of tiny op calls (gradcheck, opcheck): on a
    small VM, waking a second OpenMP thread per call can cost milliseconds
    (torch's own ops included), which would dominate the suite's run time.
    Multi-threaded execution is covered by the value tests."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
