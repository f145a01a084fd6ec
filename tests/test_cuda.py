"""CUDA backend: parity with torch, gradients, layouts, 64-bit indexing,
streams, CUDA graphs / torch.compile, determinism and error messages.

Skipped as a whole without a GPU or without convext's CUDA kernels.

Tolerances are error bounds, not fudge factors. The kernels accumulate in
float32 (float64 for float64) and round once to the output dtype, so for an
output that sums K products (K = reduction length) the classic bound for
floating-point dot products in any summation order gives
    |ours - exact| <= gamma(K) * sum|a_i * b_i| + u_out * |exact|,
    gamma(K) = K*u_acc / (1 - K*u_acc),
where sum|a_i * b_i| is the same conv run on |input|, |weight| in float64
and u is the unit roundoff (2^-24 float32, 2^-53 float64, 2^-11 float16,
2^-8 bfloat16; float16/bfloat16 products are exact in float32). A wrong tap,
channel or position changes outputs by about |exact| / sqrt(K) or more, far
above the bound. Against torch itself the two bounds add; with TF32 on,
torch rounds both operands to 10-bit mantissas first, which adds
2 * 2^-11 * sum|a_i * b_i|.
"""
import math

import pytest
import torch
import torch.nn.functional as F
from torch._prims_common import suggest_memory_format

import convext

if not torch.cuda.is_available():
    pytest.skip("no CUDA device", allow_module_level=True)
if not convext.with_cuda():
    pytest.skip("convext was built without CUDA kernels (rebuild with FORCE_CUDA=1)",
                allow_module_level=True)

DEV = "cuda"
UNIT = {torch.float64: 2.0 ** -53, torch.float32: 2.0 ** -24,
        torch.float16: 2.0 ** -11, torch.bfloat16: 2.0 ** -8}
TF32_UNIT = 2.0 ** -11

# name: (dims, N, C, OC, spatial size, kernel, stride, padding, dilation, groups)
SHAPES = {
    "plain": (2, 2, 8, 16, (13, 11), (3, 3), (1, 1), (1, 1), (1, 1), 1),
    "strided": (2, 2, 6, 10, (15, 16), (3, 2), (2, 3), (1, 0), (1, 1), 1),
    "dilated": (2, 1, 5, 7, (14, 12), (3, 3), (1, 2), (2, 1), (2, 3), 1),
    "grouped": (2, 2, 12, 18, (9, 10), (3, 3), (2, 1), (1, 1), (1, 1), 3),
    "depthwise": (2, 2, 8, 8, (12, 12), (3, 3), (1, 1), (1, 1), (1, 1), 8),
    "depthwise_mult": (2, 2, 4, 12, (11, 10), (5, 3), (2, 2), (2, 1), (1, 2), 4),
    "pointwise": (2, 3, 32, 48, (7, 9), (1, 1), (1, 1), (0, 0), (1, 1), 1),
    "patchify": (2, 2, 3, 16, (32, 32), (8, 8), (8, 8), (0, 0), (1, 1), 1),
    "wide": (2, 2, 96, 160, (20, 20), (3, 3), (1, 1), (1, 1), (1, 1), 1),
    "conv1d": (1, 3, 6, 9, (40,), (5,), (2,), (3,), (2,), 1),
    "conv1d_depthwise": (1, 2, 6, 6, (33,), (7,), (1,), (3,), (1,), 6),
}
SMALL = ["plain", "strided", "dilated", "grouped", "depthwise", "depthwise_mult", "conv1d",
         "conv1d_depthwise"]


def conv_fn(dims, lib=convext):
    return getattr(lib, f"conv{dims}d") if lib is convext else getattr(F, f"conv{dims}d")


def make(name, dtype, bias=True, seed=0):
    dims, n, c, oc, size, k, s, p, d, g = SHAPES[name]
    gen = torch.Generator(device="cpu").manual_seed(seed)
    x = torch.randn((n, c, *size), generator=gen, dtype=torch.float64)
    w = torch.randn((oc, c // g, *k), generator=gen, dtype=torch.float64)
    b = torch.randn((oc,), generator=gen, dtype=torch.float64) if bias else None
    cast = lambda t: None if t is None else t.to(DEV, dtype)  # noqa: E731
    return dims, cast(x), cast(w), cast(b), dict(stride=s, padding=p, dilation=d, groups=g)


def reference(dims, x, w, b, kw):
    """Exact-enough result in float64 and the magnitude sum|a*b| per output."""
    f = conv_fn(dims, F)
    x64, w64 = x.double(), w.double()
    b64 = None if b is None else b.double()
    ref = f(x64, w64, b64, **kw)
    mag = f(x64.abs(), w64.abs(), None if b64 is None else b64.abs(), **kw)
    return ref, mag


def bound(ref, mag, k, dtype, extra=0.0):
    acc = UNIT[torch.float64] if dtype == torch.float64 else UNIT[torch.float32]
    n = k + 2  # the products, the bias and the final rounding
    gamma = n * acc / (1 - n * acc)
    return (gamma + extra) * mag + UNIT[dtype] * ref.abs() + torch.finfo(dtype).tiny


def tf32_extra(dtype):
    """The TF32 term of the bound for float32 under torch's current setting:
    with cudnn.allow_tf32 on (torch's default for convs) the dense kernels
    round both operands to 10-bit mantissas on tensor cores, as cuDNN does."""
    return 2 * TF32_UNIT if dtype == torch.float32 and torch.backends.cudnn.allow_tf32 else 0.0


def reduction_len(w):
    return w[0].numel()  # C/groups * taps


def assert_within(got, ref, tol, what):
    if got.numel() == 0:
        return
    err = (got.double() - ref).abs()
    bad = err > tol
    worst = err.argmax()
    assert not bad.any(), (f"{what}: {int(bad.sum())} of {err.numel()} elements off, worst "
                           f"error {err.flatten()[worst]:.3g} vs bound {tol.flatten()[worst]:.3g}")


@pytest.fixture
def tf32_off():
    old = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = old


# --- forward parity ---------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("name", list(SHAPES))
def test_forward_matches_exact_and_torch(name, dtype, tf32_off):
    dims, x, w, b, kw = make(name, dtype)
    ref, mag = reference(dims, x, w, b, kw)
    tol = bound(ref, mag, reduction_len(w), dtype)
    ours = conv_fn(dims)(x, w, b, **kw)
    assert ours.dtype == dtype and ours.shape == ref.shape
    assert_within(ours, ref, tol, "convext vs float64")
    # Against torch at the elements where torch is itself within the bound: cuDNN's
    # float16/bfloat16 forward is not everywhere (measured on an H100 by
    # benchmarks/gpu/accuracy.py: up to 6x the bound in float16, 90x in bfloat16).
    theirs = conv_fn(dims, F)(x, w, b, **kw).double()
    torch_ok = (theirs - ref).abs() <= tol
    assert_within(ours[torch_ok], theirs[torch_ok], 2 * tol[torch_ok], "convext vs torch")


@pytest.mark.parametrize("name", ["plain", "wide", "grouped", "conv1d"])
def test_float32_follows_the_tf32_setting(name):
    """TF32 off: full float32 (SIMT kernels). On (torch's default for convs):
    the tensor-core TF32 kernel where the channels allow it (plain, wide),
    within the bound of 10-bit operands, like torch with TF32."""
    dims, x, w, b, kw = make(name, torch.float32)
    ref, mag = reference(dims, x, w, b, kw)
    tol = bound(ref, mag, reduction_len(w), torch.float32)
    tf32_tol = bound(ref, mag, reduction_len(w), torch.float32, extra=2 * TF32_UNIT)
    old = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    try:
        outs = []
        for flag in (False, True):
            torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = flag
            outs.append(conv_fn(dims)(x, w, b, **kw))
        theirs = conv_fn(dims, F)(x, w, b, **kw)  # TF32 on: 10-bit operands
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = old
    assert_within(outs[0], ref, tol, "convext, TF32 off, vs float64")
    assert_within(outs[1], ref, tf32_tol, "convext, TF32 on, vs float64")
    assert_within(outs[1], theirs.double(), 2 * tf32_tol, "convext vs torch (TF32)")


# --- backward parity --------------------------------------------------------

def grads_reference(dims, x, w, b, kw, go):
    """float64 gradients and their magnitudes (the same sums over |.|)."""
    f = conv_fn(dims, F)

    def grads(xx, ww, bb, gg):
        xx, ww = xx.double().requires_grad_(), ww.double().requires_grad_()
        bb = None if bb is None else bb.double().requires_grad_()
        out = f(xx, ww, bb, **kw)
        inputs = (xx, ww) + (() if bb is None else (bb,))
        return torch.autograd.grad(out, inputs, gg.double())

    exact = grads(x, w, b, go)
    mags = grads(x.abs(), w.abs(), None if b is None else b.abs(), go.abs())
    return exact, mags


@pytest.fixture
def tf32_flag(request):
    """Sets cudnn.allow_tf32 to the test's `tf32` parameter for its duration."""
    old = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = request.param
    yield request.param
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = old


@pytest.mark.parametrize("dtype,tf32_flag", [
    (torch.float32, False), (torch.float32, True), (torch.float16, True), (torch.bfloat16, True)],
    ids=["float32", "float32-tf32", "float16", "bfloat16"], indirect=["tf32_flag"])
@pytest.mark.parametrize("name", list(SHAPES))
def test_backward_matches_exact(name, dtype, tf32_flag):
    dims, x, w, b, kw = make(name, dtype)
    x.requires_grad_()
    w.requires_grad_()
    b.requires_grad_()
    out = conv_fn(dims)(x, w, b, **kw)
    go = torch.randn_like(out)
    gx, gw, gb = torch.autograd.grad(out, (x, w, b), go)
    (ex, ew, eb), (mx, mw, mb) = grads_reference(dims, x.detach(), w.detach(), b.detach(), kw,
                                                 go)
    oc_per_group = w.shape[0] // kw["groups"]
    positions = out[0, 0].numel() * out.shape[0]
    extra = tf32_extra(dtype)
    assert_within(gx, ex, bound(ex, mx, oc_per_group * w[0, 0].numel(), dtype, extra),
                  "grad_input")
    assert_within(gw, ew, bound(ew, mw, positions, dtype, extra), "grad_weight")
    assert_within(gb, eb, bound(eb, mb, positions, dtype), "grad_bias")  # a plain sum


@pytest.mark.parametrize("name", SMALL)
def test_gradcheck_and_gradgradcheck_float64(name):
    dims, x, w, b, kw = make(name, torch.float64)
    if name == "plain":  # keep gradgradcheck quick
        x = x[:1]
    args = tuple(t.requires_grad_() for t in (x, w, b))
    f = lambda x, w, b: conv_fn(dims)(x, w, b, **kw)  # noqa: E731
    assert torch.autograd.gradcheck(f, args)
    assert torch.autograd.gradgradcheck(f, args)


# --- layouts ----------------------------------------------------------------

def layouts(t):
    yield "contiguous", t
    if t.dim() == 4:
        yield "channels_last", t.contiguous(memory_format=torch.channels_last)
    big = torch.empty((*t.shape[:-1], 2 * t.shape[-1]), device=t.device, dtype=t.dtype)
    big[..., ::2] = t
    yield "strided_view", big[..., ::2]
    yield "transposed", t.transpose(-1, -2).contiguous().transpose(-1, -2)


@pytest.mark.parametrize("name", ["plain", "strided", "grouped", "depthwise", "conv1d"])
def test_noncontiguous_and_channels_last(name):
    dims, x, w, b, kw = make(name, torch.float32)
    ref, mag = reference(dims, x, w, b, kw)
    tol = bound(ref, mag, reduction_len(w), torch.float32, tf32_extra(torch.float32))
    for lx, xv in layouts(x):
        for lw, wv in layouts(w):
            out = conv_fn(dims)(xv, wv, b, **kw)
            assert_within(out, ref, tol, f"input {lx}, weight {lw}")
            # torch's rule for cuDNN: channels_last out when either input suggests it.
            expect_cl = dims == 2 and torch.channels_last in (
                suggest_memory_format(xv), suggest_memory_format(wv))
            assert out.is_contiguous(memory_format=torch.channels_last) == expect_cl, (lx, lw)


@pytest.mark.parametrize("name", ["plain", "strided", "depthwise", "conv1d"])
def test_backward_with_channels_last_and_expanded_grad(name):
    dims, x, w, b, kw = make(name, torch.float32)
    if dims == 2:
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_()
    w.requires_grad_()
    out = conv_fn(dims)(x, w, b, **kw)
    go = torch.ones(1, device=DEV).expand_as(out)  # stride-0 grad_output, as from .sum()
    gx, gw = torch.autograd.grad(out, (x, w), go)
    (ex, ew, _), (mx, mw, _) = grads_reference(dims, x.detach(), w.detach(), b, kw, go)
    positions = out[0, 0].numel() * out.shape[0]
    extra = tf32_extra(torch.float32)
    assert_within(gx, ex, bound(ex, mx, w.shape[0] * w[0, 0].numel(), torch.float32, extra),
                  "grad_input")
    assert_within(gw, ew, bound(ew, mw, positions, torch.float32, extra), "grad_weight")


def test_empty_batch():
    dims, x, w, b, kw = make("plain", torch.float32)
    x = x[:0].requires_grad_()
    w.requires_grad_()
    b.requires_grad_()
    out = convext.conv2d(x, w, b, **kw)
    assert out.shape == F.conv2d(x, w, b, **kw).shape
    out.sum().backward()
    assert x.grad.shape == x.shape
    assert torch.equal(w.grad, torch.zeros_like(w)) and torch.equal(b.grad, torch.zeros_like(b))


# --- 64-bit indexing ----------------------------------------------------------

def _free_bytes():
    free, _ = torch.cuda.mem_get_info()
    return free


@pytest.mark.skipif(_free_bytes() < 40 * 2 ** 30, reason="needs ~40 GiB of free GPU memory")
@pytest.mark.parametrize("groups", [1, 2], ids=["dense", "depthwise"])
def test_tensor_larger_than_2_31_elements(groups):
    """conv1d over more than 2^31 elements. Only the last 3000 positions are
    non-zero, so an offset that wraps at 32 bits reads zeros or other data;
    and a float64 reference on a window around them is exact for the whole
    window (everything outside it is zero)."""
    c, taps = 2, 5
    length = 2 ** 31 // c + 4096  # N*C*L > 2^31
    x = torch.zeros((1, c, length), device=DEV, dtype=torch.float16)
    x[..., -3000:] = torch.randn((1, c, 3000), device=DEV, dtype=torch.float16)
    w = torch.randn((c, c // groups, taps), device=DEV, dtype=torch.float16)
    kw = dict(stride=(1,), padding=(2,), dilation=(1,), groups=groups)
    xg, wg = x.requires_grad_(), w.requires_grad_()
    out = convext.conv1d(xg, wg, None, **kw)
    assert out.numel() > 2 ** 31
    go = torch.zeros_like(out)
    go[..., -3000:] = torch.randn((1, c, 3000), device=DEV, dtype=torch.float16)
    gx, gw = torch.autograd.grad(out, (xg, wg), go)

    win = slice(length - 3100, length)
    xw, gow = x.detach()[..., win], go[..., win]
    ref, mag = reference(1, xw, w.detach(), None, kw)
    assert_within(out[..., win], ref, bound(ref, mag, reduction_len(w), torch.float16), "out")
    (ex, ew), (mx, mw) = grads_reference(1, xw, w.detach(), None, kw, gow)
    assert_within(gx[..., win], ex, bound(ex, mx, w.shape[0] // groups * taps, torch.float16),
                  "grad_input")
    # Only ~3000 positions have non-zero terms; adding zeros is exact.
    assert_within(gw, ew, bound(ew, mw, 3000 + taps, torch.float16), "grad_weight")


# --- streams, graphs, compile --------------------------------------------------

@pytest.mark.parametrize("name", ["wide", "depthwise"])
def test_runs_on_current_non_default_stream(name):
    dims, x, w, b, kw = make(name, torch.float32)
    ops = torch.ops.convext
    args = (list(kw["stride"]), list(kw["padding"]), list(kw["dilation"]), kw["groups"])
    ref = convext.conv2d(x, w, b, **kw)
    ref_gw = ops.conv2d_grad_weight(ref, x, list(w.shape), *args)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        torch.cuda._sleep(50_000_000)  # the input below is written late on `side`
        xs = x * 1.0
        out = convext.conv2d(xs, w, b, **kw)
        gw = ops.conv2d_grad_weight(out, xs, list(w.shape), *args)
    torch.cuda.current_stream().wait_stream(side)
    torch.cuda.synchronize()
    assert torch.equal(out, ref)
    assert torch.equal(gw, ref_gw)


def test_cuda_graph_capture_and_replay():
    dims, x, w, b, kw = make("strided", torch.float32)
    static_x = x.clone()
    go = torch.randn_like(convext.conv2d(x, w, b, **kw))
    ops = torch.ops.convext

    def step():
        y = ops.conv2d(static_x, w, b, list(kw["stride"]), list(kw["padding"]),
                       list(kw["dilation"]), kw["groups"])
        gx = ops.conv2d_grad_input(go, w, list(static_x.shape), list(kw["stride"]),
                                   list(kw["padding"]), list(kw["dilation"]), kw["groups"])
        gw = ops.conv2d_grad_weight(go, static_x, list(w.shape), list(kw["stride"]),
                                    list(kw["padding"]), list(kw["dilation"]), kw["groups"])
        return y, gx, gw, ops.conv_grad_bias(go)

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm up outside the capture
        step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        outs = step()
    new_x = torch.randn_like(x)
    static_x.copy_(new_x)
    graph.replay()
    torch.cuda.synchronize()
    expect = step()
    for got, want in zip(outs, expect):
        assert torch.equal(got, want)


def test_torch_compile_reduce_overhead():
    torch.manual_seed(0)
    model = torch.nn.Sequential(convext.Conv2d(8, 16, 3, padding=1), torch.nn.ReLU(),
                                convext.Conv2d(16, 16, 3, stride=2, groups=16)).to(DEV)
    x = torch.randn(4, 8, 16, 16, device=DEV)
    eager_out = model(x)
    eager_out.sum().backward()
    eager_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    compiled = torch.compile(model, mode="reduce-overhead")
    for _ in range(3):  # record, then replay the CUDA graph
        model.zero_grad()
        out = compiled(x)
        out.sum().backward()
        got_out = out.detach().clone()
    assert torch.equal(got_out, eager_out.detach())
    for p, g in zip(model.parameters(), eager_grads):
        assert torch.equal(p.grad, g)


# --- determinism, devices, errors ------------------------------------------------

@pytest.mark.parametrize("name", ["wide", "pointwise", "depthwise", "conv1d"])
def test_weight_and_bias_grads_bitwise_deterministic(name):
    dims, x, w, b, kw = make(name, torch.float32)
    x = torch.cat([x] * 8)  # a long reduction, split across blocks
    go = torch.randn_like(conv_fn(dims)(x, w, b, **kw))
    ops = torch.ops.convext
    args = (list(kw["stride"]), list(kw["padding"]), list(kw["dilation"]), kw["groups"])
    grad_weight = getattr(ops, f"conv{dims}d_grad_weight")
    old = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        first = grad_weight(go, x, list(w.shape), *args), ops.conv_grad_bias(go)
        for _ in range(3):
            again = grad_weight(go, x, list(w.shape), *args), ops.conv_grad_bias(go)
            assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    finally:
        torch.use_deterministic_algorithms(old)


def test_mixed_devices_raise_torch_message():
    dims, x, w, b, kw = make("plain", torch.float32)
    with pytest.raises(RuntimeError,
                       match=r"Input type \(.*\) and weight type \(.*\) should be the same"):
        convext.conv2d(x, w.cpu(), None, **kw)
    with pytest.raises(RuntimeError,
                       match=r"Input type \(.*\) and bias type \(.*\) should be the same"):
        convext.conv2d(x, w, b.cpu(), **kw)


def test_cpu_tensors_still_use_cpu_kernels():
    dims, x, w, b, kw = make("strided", torch.float32)
    x, w, b = x.cpu(), w.cpu(), b.cpu()
    ref, mag = reference(dims, x, w, b, kw)
    out = convext.conv2d(x, w, b, **kw)
    assert out.device.type == "cpu"
    assert_within(out, ref, bound(ref, mag, reduction_len(w), torch.float32), "CPU kernels")


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs")
def test_second_device():
    dims, x, w, b, kw = make("plain", torch.float32)
    x1, w1, b1 = (t.to("cuda:1") for t in (x, w, b))
    out = convext.conv2d(x1, w1, b1, **kw)
    assert out.device == x1.device
    assert torch.equal(out.cpu(), convext.conv2d(x, w, b, **kw).cpu())


def test_float64_reductions_are_float64():
    dims, x, w, b, kw = make("wide", torch.float64)
    ref, mag = reference(dims, x, w, b, kw)
    out = convext.conv2d(x, w, b, **kw)
    assert_within(out, ref, bound(ref, mag, reduction_len(w), torch.float64), "float64")
    assert math.isfinite(out.abs().max().item())
