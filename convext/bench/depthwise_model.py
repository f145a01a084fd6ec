"""Bytes the CUDA depthwise kernels move per pass, modelled from their launch
plan (csrc/ops/cuda/depthwise_tile.cuh, depthwise_cuda.cu), so a GPU run can
later be compared with a bandwidth roofline. Nothing here runs a kernel.

`depthwise_bytes(case, dtype, layout, direction)` takes a
convext.bench.suites.Shape (batch: its CUDA batch), a torch dtype (or its
name), "nchw" or "channels_last" and "forward", "grad_input" or
"grad_weight", and returns a dict:
  path        which kernel runs: "tile <cfg>", "per-element" or "split-sum"
  min_bytes   the compulsory HBM traffic: every operand read once, the result
              written once (weights and bias included)
  kernel_bytes what the kernel requests from memory: tile kernels re-read
              their halo (the staged tile, in 16-byte rows when aligned);
              per-element kernels request taps loads per result; grad_weight
              one read of both operands per tap, plus its partial sums
  hbm_s       min_bytes / the HBM bandwidth (3.35 TB/s, H100 SXM): the time
              a kernel at the roofline would take; a bound, not a measurement
The halo re-reads mostly hit L2, so the truth lies between min_bytes and
kernel_bytes; the per-element kernels are instruction-bound well before that.
"""
import math

H100_HBM_BYTES_PER_S = 3.35e12

_THREADS = 256
_SMEM_BYTES = 24576
_MAX_CHAN_BLOCK = 32
_FIXED_TAPS = {(3, 3), (5, 5), (7, 7), (1, 2), (1, 3), (1, 4)}
_GRAD_WEIGHT_BLOCKS = 1024
_ELEM = {"float32": 4, "float64": 8, "float16": 2, "bfloat16": 2}
_ACC = {"float32": 4, "float64": 8, "float16": 4, "bfloat16": 4}


def _dtype_name(dtype):
    return str(dtype).replace("torch.", "")


def _pow2_at_least(n):
    p = 1
    while p < n and p < (1 << 20):
        p *= 2
    return p


def plan_tile(IH, IW, OH, OW, C, kernel, stride, dilation, elem, channels_fastest, vec):
    """The tile plan_tile in depthwise_tile.cuh picks, or None (per-element
    kernel). Returns (cb, TH, TW, staged elements per tile, tiles per image)."""
    KH, KW = kernel
    sh, sw = stride
    dh, dw = dilation
    V = 16 // elem
    cb = min(_MAX_CHAN_BLOCK, _pow2_at_least(C)) if channels_fastest else 1
    vec = vec and cb % (V if channels_fastest else 1) == 0
    P = _THREADS // cb
    if OH == 1:
        bx = min(P, _pow2_at_least(OW))
        by, px, py = P // bx, min(max(math.ceil(OW / bx), 1), 8), 1
    else:
        bx = min(P, 64, _pow2_at_least(OW))
        by = P // bx
        px = min(max(math.ceil(OW / bx), 1), 2) if cb > 1 else 1
        py = min(max(math.ceil(OH / by), 1), 8 if cb > 1 else 4)
    cap = _SMEM_BYTES // elem
    while True:
        TH, TW = by * py, bx * px
        iht = (TH - 1) * sh + (KH - 1) * dh + 1
        iwt = (TW - 1) * sw + (KW - 1) * dw + 1
        if cb > 1:
            rows, ld = iht * iwt, cb
        else:
            step = V if vec else 1
            rows, ld = iht, math.ceil((iwt + step - 1) / step) * step
        if rows * ld <= cap:
            break
        if py > 1:
            py = (py + 1) // 2
        elif px > 1:
            px = (px + 1) // 2
        else:
            return None
    tiles = math.ceil(OH / TH) * math.ceil(OW / TW)
    return cb, TH, TW, rows * ld, tiles


def depthwise_bytes(case, dtype, layout="nchw", direction="forward"):
    """See the module docstring. `case` must be a depthwise conv (groups ==
    cin > 1)."""
    name = _dtype_name(dtype)
    elem, acc = _ELEM[name], _ACC[name]
    assert case.groups == case.cin > 1 and not case.transposed, case.name
    N = case.batch_for("cuda")
    C, OC = case.cin, case.cout
    size, out = list(case.size), list(case.out_size())
    if case.dims == 1:  # 1D convs run as 2D with H = 1
        size, out = [1] + size, [1] + out
    kernel = (1,) * (2 - case.dims) + tuple(case.kernel)
    stride = (1,) * (2 - case.dims) + tuple(case.stride)
    dil = (1,) * (2 - case.dims) + tuple(case.dilation)
    taps = math.prod(kernel)
    x_bytes = N * C * math.prod(size) * elem
    y_bytes = N * OC * math.prod(out) * elem
    w_bytes = OC * taps * elem
    cl = layout == "channels_last"
    # cl: C % V == 0 makes the pixel stride a whole number of vectors; nchw:
    # the row stride W (1D: the length).
    V = 16 // elem
    vec = C % V == 0 if cl else size[-1] % V == 0
    one_stride = all(s == 1 for s in stride)

    def tiled(IH, IW, OH, OW, src_bytes, res_bytes):
        plan = plan_tile(IH, IW, OH, OW, C, kernel, stride if direction == "forward" else (1, 1),
                         dil, elem, cl, vec)
        if plan is None:
            return None
        cb, TH, TW, staged, tiles = plan
        blocks = N * math.ceil(C / cb) * tiles
        kind = "taps %dx%d" % kernel if kernel in _FIXED_TAPS else "runtime taps"
        return dict(path=f"tile {TH}x{TW}x{cb}ch, {kind}", min_bytes=src_bytes + res_bytes + w_bytes,
                    kernel_bytes=blocks * staged * elem + res_bytes + w_bytes)

    r = None
    if direction == "forward":
        b_bytes = OC * elem
        if OC == C:
            r = tiled(*size, *out, x_bytes, y_bytes)
            if r:
                r["min_bytes"] += b_bytes
                r["kernel_bytes"] += b_bytes
        if r is None:
            r = dict(path="per-element", min_bytes=x_bytes + y_bytes + w_bytes + b_bytes,
                     kernel_bytes=y_bytes + N * OC * math.prod(out) * taps * 2 * elem)
    elif direction == "grad_input":
        if OC == C and one_stride:
            r = tiled(*out, *size, y_bytes, x_bytes)
        if r is None:
            per = max(1, taps // math.prod(stride))
            r = dict(path="per-element", min_bytes=x_bytes + y_bytes + w_bytes,
                     kernel_bytes=x_bytes + N * C * math.prod(size) * per * 2 * elem)
    elif direction == "grad_weight":
        R = N * math.prod(out)
        want = math.ceil(_GRAD_WEIGHT_BLOCKS / (OC * taps))
        splits = max(1, min(want, max(1, R // (16 * _THREADS))))
        part = splits * OC * taps * acc
        r = dict(path=f"split-sum, {splits} splits",
                 min_bytes=x_bytes + y_bytes + w_bytes + 2 * part,
                 kernel_bytes=taps * (x_bytes + y_bytes) + w_bytes + 2 * part)
    else:
        raise ValueError(f"direction: {direction!r}")
    r["hbm_s"] = r["min_bytes"] / H100_HBM_BYTES_PER_S
    return r


def depthwise_cases():
    """The suites' depthwise shapes, 2D and 1D."""
    from convext.bench.suites import ALL
    return [s for s in ALL if s.groups == s.cin > 1 and not s.transposed]
