"""One table row: a shape in one dtype and layout, checked, then timed in each
direction with convext and native interleaved.

Directions (inputs, weight and bias all require grad):
  fwd    - forward under torch.no_grad() (inference: no graph is recorded)
  bwd    - backward alone: torch.autograd.grad of a retained graph, giving
           input, weight and bias grads (no .grad accumulation is timed)
  fwdbwd - forward with graph + the same autograd.grad call
"""
import contextlib
import functools

import torch
import torch.nn.functional as F

import convext
from convext import _C

from . import correctness, timing

DIRECTIONS = ("fwd", "bwd", "fwdbwd")
FLOP_FACTOR = {"fwd": 1, "bwd": 2, "fwdbwd": 3}  # bwd = grad_input + grad_weight
IMPLS = {"convext": {1: convext.conv1d, 2: convext.conv2d},
         "native": {1: F.conv1d, 2: F.conv2d}}
TRANSPOSED_IMPLS = {"convext": {1: convext.conv_transpose1d, 2: convext.conv_transpose2d},
                    "native": {1: F.conv_transpose1d, 2: F.conv_transpose2d}}


def memory_format(layout, dims):
    """channels_last only exists for 4D tensors; 1D convs stay contiguous."""
    return torch.channels_last if layout == "channels_last" and dims == 2 \
        else torch.contiguous_format


def make_inputs(shape, batch, dtype, device, layout, seed=0):
    """x, w, b (requiring grad) and a grad_output, the same for both sides.
    Weights are scaled by 1/sqrt(fan_in) so outputs stay O(1): fp16 can't overflow."""
    gen = torch.Generator().manual_seed(seed)
    fmt = memory_format(layout, shape.dims)
    fan_in = shape.fan_in()

    def rand(size, scale=1.0):
        t = torch.randn(size, generator=gen) * scale
        return t.to(device=device, dtype=dtype).contiguous(
            memory_format=fmt if t.dim() == 4 else torch.contiguous_format)

    x = rand(shape.input_shape(batch)).requires_grad_()
    w = rand(shape.weight_shape(), fan_in ** -0.5).requires_grad_()
    b = rand((shape.cout,)).requires_grad_()
    go = rand((batch, shape.cout, *shape.out_size()))
    return x, w, b, go


def conv_fn(impl, shape):
    impls = TRANSPOSED_IMPLS if shape.transposed else IMPLS
    return functools.partial(impls[impl][shape.dims], **shape.conv_kwargs())


def direction_fn(conv, direction, x, w, b, go):
    params = (x, w, b)
    if direction == "fwd":
        def fwd():
            with torch.no_grad():
                return conv(x, w, b)
        return fwd
    if direction == "bwd":
        y = conv(x, w, b)
        return lambda: torch.autograd.grad(y, params, go, retain_graph=True)
    if direction == "fwdbwd":
        return lambda: torch.autograd.grad(conv(x, w, b), params, go)
    raise ValueError(f"unknown direction {direction!r}")


def results(conv, x, w, b, go):
    y = conv(x, w, b)
    gx, gw, gb = torch.autograd.grad(y, (x, w, b), go)
    return {"out": y, "grad_input": gx, "grad_weight": gw, "grad_bias": gb}


def scratch(conv, x, w, b, go):
    """Peak bytes of convext's CPU scratch memory (convext._C.scratch_stats:
    packed panels, staged planes, partial sums, every thread's buffers) in one
    forward and in one backward (input, weight and bias grads), at the run's
    thread count; the rule is that neither exceeds the output's bytes."""
    _C.scratch_stats(reset=True)
    with torch.no_grad():
        conv(x, w, b)
    fwd = _C.scratch_stats(reset=True)
    y = conv(x, w, b)
    _C.scratch_stats(reset=True)
    torch.autograd.grad(y, (x, w, b), go)
    bwd = _C.scratch_stats(reset=True)
    out = y.numel() * y.element_size()
    return {"fwd": fwd, "bwd": bwd, "out": out,
            "fwd_per_out": fwd / out if out else None, "bwd_per_out": bwd / out if out else None}


@contextlib.contextmanager
def row_errors(row, device):
    """An exception inside becomes row["error"]: one failing shape or model
    (unsupported dtype, out of memory) must not end the whole run."""
    try:
        yield
    except Exception as err:  # noqa: BLE001
        row["error"] = f"{type(err).__name__}: {err}"
    finally:
        if device == "cuda":
            torch.cuda.empty_cache()


def timed_pair(fns, threads, timing_opts, flops=None, peak=None, nbytes=None, bandwidth=None):
    """Times {"convext": fn, "native": fn} interleaved; adds ratio and, given
    the work in FLOPs, GFLOP/s and % of peak; given the bytes moved (memory-
    bound shapes), GB/s and % of the measured bandwidth."""
    t = timing.interleaved(fns, threads, **timing_opts)
    cx, nat = t["convext"]["median"], t["native"]["median"]
    entry = {"convext": t["convext"], "native": t["native"], "ratio": cx / nat,
             "paired_ratio_median": t["paired_ratio_median"], "flops": flops}
    if flops:
        entry.update(gflops_convext=flops / cx / 1e9, gflops_native=flops / nat / 1e9,
                     pct_peak_convext=100 * flops / cx / 1e9 / peak if peak else None)
    if nbytes:
        entry.update(bytes=nbytes, gbs_convext=nbytes / cx / 1e9, gbs_native=nbytes / nat / 1e9,
                     pct_bandwidth_convext=100 * nbytes / cx / 1e9 / bandwidth
                     if bandwidth else None)
    return entry


def bench_shape(shape, dtype, device, layout, directions, threads, timing_opts, peak,
                tol=None, bandwidth=None):
    """Returns the row dict; a failing shape gets its error in the row.
    tol: the gate's tolerance (default: the dtype's without TF32).
    bandwidth: GB/s, for the memory-bound (depthwise) shapes' % column."""
    batch = shape.batch_for(device)
    flops = shape.flops_fwd(batch)
    row = {"shape": shape.name, "desc": shape.describe(), "dims": shape.dims, "batch": batch,
           "dtype": str(dtype).replace("torch.", ""), "layout": layout, "flops_fwd": flops,
           "check": None, "error": None, "timings": {}, "scratch": None}
    with row_errors(row, device):
        x, w, b, go = make_inputs(shape, batch, dtype, device, layout)
        convs = {impl: conv_fn(impl, shape) for impl in IMPLS}
        row["check"] = correctness.compare(results(convs["convext"], x, w, b, go),
                                           results(convs["native"], x, w, b, go),
                                           tol or correctness.tolerance(dtype))
        if device == "cpu":
            row["scratch"] = scratch(convs["convext"], x, w, b, go)
        for direction in directions:
            fns = {impl: direction_fn(convs[impl], direction, x, w, b, go) for impl in IMPLS}
            nbytes = (shape.min_bytes(batch, dtype.itemsize)[direction]
                      if shape.memory_bound() else None)
            row["timings"][direction] = timed_pair(
                fns, threads, timing_opts, flops * FLOP_FACTOR[direction], peak, nbytes,
                bandwidth)
            del fns  # frees the retained graphs before the next direction
    return row
