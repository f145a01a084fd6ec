"""Bytes the CUDA depthwise kernels move per pass, modelled from their launch
plan (csrc/ops/cuda/depthwise_tile.cuh, depthwise_cuda.cu), so a GPU run can
later be compared with a bandwidth roofline. Nothing here runs a kernel.

`depthwise_bytes(case, dtype, layout, direction)` takes a
convext.bench.suites.Shape (batch: its CUDA batch), a torch dtype (or its
name), "nchw" or "channels_last" and "forward", "grad_input" or
"grad_weight", and returns a dict:
  path        which kernel runs: "tile THxTWxCB" (outputs x channels per block),
              "per-element" or "per-tap split-sum" (the fallbacks)
  min_bytes   the compulsory HBM traffic: every operand read once, the result
              written once (weights and bias included)
  kernel_bytes what the kernel requests from memory: tile kernels re-read
              their halo (the staged tile, in 16-byte rows when aligned);
              per-element kernels request taps loads per result; grad_weight
              its partial sums too (per-tap fallback: both operands per tap)
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


def _plan_shape(IH, IW, OH, OW, cb, kernel, stride, dilation, elem, vec):
    """plan_shape in depthwise_tile.cuh: (TH, TW, staged rows, row pitch) or None."""
    KH, KW = kernel
    sh, sw = stride
    dh, dw = dilation
    V = 16 // elem
    vec = vec and cb % (V if cb > 1 else 1) == 0
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
            return TH, TW, rows, ld, iht, iwt
        if py > 1:
            py = (py + 1) // 2
        elif px > 1:
            px = (px + 1) // 2
        else:
            return None


def plan_tile(IH, IW, OH, OW, C, kernel, stride, padding, dilation, elem, channels_fastest,
              vec):
    """The tile plan_tile in depthwise_tile.cuh picks, or None (per-element
    kernel). Returns (cb, TH, TW, input positions staged from memory by the
    tiles of one image and channel, tiles per image): staged positions
    outside the image are zero-filled, not loaded, and not counted."""
    cb0 = min(_MAX_CHAN_BLOCK, _pow2_at_least(C)) if channels_fastest else 1
    best, best_eff, cb = None, 0.0, cb0
    while cb >= min(cb0, 32 // elem):
        shape = _plan_shape(IH, IW, OH, OW, cb, kernel, stride, dilation, elem, vec)
        if shape is not None:
            TH, TW, rows, ld = shape[:4]
            eff = TH * TW * cb / (rows * ld)
            if eff > best_eff:
                best, best_eff = (cb, shape), eff
        cb //= 2
    if best is None:
        return None
    cb, (TH, TW, rows, ld, iht, iwt) = best
    (sh, sw), (ph, pw) = stride, padding
    ty_n, tx_n = math.ceil(OH / TH), math.ceil(OW / TW)

    def inside(start, n, size):
        return max(0, min(start + n, size) - max(start, 0))

    # in-image rows x columns staged per tile (tile origin: o0 * s - p)
    rows_in = sum(inside(t * TH * sh - ph, iht, IH) for t in range(ty_n))
    cols_in = sum(inside(t * TW * sw - pw, iwt, IW) for t in range(tx_n))
    return cb, TH, TW, rows_in * cols_in, ty_n * tx_n


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

    pad = (0,) * (2 - case.dims) + tuple(case.padding)
    flipped = tuple((k - 1) * d - p for k, d, p in zip(kernel, dil, pad))

    def tiled(IH, IW, OH, OW, st, padding):
        """(path, bytes staged from memory) of the tiled kernel, or None."""
        plan = plan_tile(IH, IW, OH, OW, C, kernel, st, padding, dil, elem, cl, vec)
        if plan is None:
            return None
        cb, TH, TW, staged, tiles = plan
        kind = "taps %dx%d" % kernel if kernel in _FIXED_TAPS else "runtime taps"
        return f"tile {TH}x{TW}x{cb}ch, {kind}", N * C * staged * elem, cb, tiles

    r = None
    if direction == "forward":
        b_bytes = OC * elem
        t = tiled(*size, *out, stride, pad) if OC == C else None
        if t:
            r = dict(path=t[0], min_bytes=x_bytes + y_bytes + w_bytes + b_bytes,
                     kernel_bytes=t[1] + y_bytes + w_bytes + b_bytes)
        else:
            r = dict(path="per-element", min_bytes=x_bytes + y_bytes + w_bytes + b_bytes,
                     kernel_bytes=y_bytes + N * OC * math.prod(out) * taps * 2 * elem)
    elif direction == "grad_input":
        t = tiled(*out, *size, (1, 1), flipped) if OC == C and one_stride else None
        if t:
            r = dict(path=t[0], min_bytes=x_bytes + y_bytes + w_bytes,
                     kernel_bytes=t[1] + x_bytes + w_bytes)
        else:
            per = max(1, taps // math.prod(stride))
            r = dict(path="per-element", min_bytes=x_bytes + y_bytes + w_bytes,
                     kernel_bytes=x_bytes + N * C * math.prod(size) * per * 2 * elem)
    elif direction == "grad_weight":
        t = tiled(*size, *out, stride, pad) if OC == C and kernel in _FIXED_TAPS else None
        if t:  # tiles of the input, a fixed set per block
            path, staged, cb, tiles = t
            chunks = math.ceil(C / cb)
            splits = min(max(math.ceil(_GRAD_WEIGHT_BLOCKS / chunks), 1), max(N * tiles, 1))
            part = splits * C * taps * acc
            r = dict(path=f"{path.split(',')[0]}, {splits} splits",
                     min_bytes=x_bytes + y_bytes + w_bytes + 2 * part,
                     kernel_bytes=staged + y_bytes + w_bytes + 2 * part)
        else:  # a block per (channel, tap, slice of the positions)
            R = N * math.prod(out)
            want = math.ceil(_GRAD_WEIGHT_BLOCKS / (OC * taps))
            splits = max(1, min(want, max(1, R // (16 * _THREADS))))
            part = splits * OC * taps * acc
            r = dict(path=f"per-tap split-sum, {splits} splits",
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
