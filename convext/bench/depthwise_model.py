"""Bytes the CUDA depthwise kernels move per pass, modelled from their launch
plan (csrc/ops/cuda/depthwise_tile.cuh, depthwise_cuda.cu), so a GPU run can
later be compared with a bandwidth roofline. Nothing here runs a kernel.

`depthwise_bytes(case, dtype, layout, direction)` takes a
convext.bench.suites.Shape (batch: its CUDA batch), a torch dtype (or its
name), "nchw" or "channels_last" and "forward", "grad_input" or
"grad_weight", and returns a dict:
  path        which kernel runs: "tile THxTWxCB" (outputs x channels per block;
              strided grad_input: points of its stride lattice x the
              phases), "per-element" or "per-tap split-sum" (the fallbacks)
  min_bytes   the compulsory HBM traffic: every operand read once, the result
              written once (weights and bias included)
  kernel_bytes what the kernel requests from memory: tile kernels re-read
              their halo (the staged tile, in 16-byte rows when aligned;
              grad_weight with a multiplier m stages each tile m times);
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


def _plan_shape(OH, OW, cb, halo, stride, elem, vec, sc):
    """plan_shape in depthwise_tile.cuh: (TH, TW, staged rows, row pitch,
    staged tile rows, cols) or None."""
    hh, hw = halo
    sh, sw = stride
    V = 16 // elem
    vec = vec and (cb * sc % V == 0 if cb > 1 else True)
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
    best, best_eff = None, 0.0
    for py_ in _halvings(py):
        for px_ in _halvings(px):
            TH, TW = by * py_, bx * px_
            iht = (TH - 1) * sh + hh + 1
            iwt = (TW - 1) * sw + hw + 1
            if cb > 1:
                rows, ld, planes = iht * iwt, cb * sc, 1
            else:
                step = V if vec else 1
                rows, ld, planes = iht, math.ceil((iwt + step - 1) / step) * step, sc
            eff = TH * TW / (rows * ld * planes)
            if rows * ld * planes <= cap and eff > best_eff:
                best, best_eff = (TH, TW, rows, ld * planes, iht, iwt), eff
    return best


def _halvings(n):
    """n, then halved (rounding up) down to 1."""
    while True:
        yield n
        if n == 1:
            return
        n = (n + 1) // 2


def plan_tile(IH, IW, OH, OW, C, halo, stride, padding, elem, channels_fastest, vec, sc=1):
    """The tile plan_tile in depthwise_tile.cuh picks for staging an IH x IW
    source (sc source channels per channel) and tiling OH x OW positions, or
    None (per-element kernel). Returns (cb, TH, TW, source positions staged
    from memory by the tiles of one image and source channel, tiles per
    image): staged positions outside the image are zero-filled, not loaded,
    and not counted."""
    cb0 = min(_MAX_CHAN_BLOCK, _pow2_at_least(C)) if channels_fastest else 1
    best, best_eff, cb = None, 0.0, cb0
    while cb >= min(cb0, 32 // elem):
        shape = _plan_shape(OH, OW, cb, halo, stride, elem, vec, sc)
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
    mult = OC // C
    size, out = list(case.size), list(case.out_size())
    if case.dims == 1:  # 1D convs run as 2D with H = 1
        size, out = [1] + size, [1] + out
    kernel = (1,) * (2 - case.dims) + tuple(case.kernel)
    stride = (1,) * (2 - case.dims) + tuple(case.stride)
    dil = (1,) * (2 - case.dims) + tuple(case.dilation)
    pad = (0,) * (2 - case.dims) + tuple(case.padding)
    taps = math.prod(kernel)
    x_bytes = N * C * math.prod(size) * elem
    y_bytes = N * OC * math.prod(out) * elem
    w_bytes = OC * taps * elem
    cl = layout == "channels_last"
    V = 16 // elem
    kind = "taps %dx%d" % kernel if kernel in _FIXED_TAPS else "runtime taps"

    def vec_ok(channels, width):
        """16-byte loads of a source with `channels` channels: channels_last,
        a whole number of vectors per position; nchw, per row."""
        return channels % V == 0 if cl else width % V == 0

    def forward_tiles():
        halo = tuple((k - 1) * d for k, d in zip(kernel, dil))
        return plan_tile(*size, *out, C, halo, stride, pad, elem, cl, vec_ok(C, size[-1]))

    r = None
    if direction == "forward":
        b_bytes = OC * elem
        t = forward_tiles()
        if t:  # the input tile staged once for the mult outputs of its channel
            cb, TH, TW, staged, _ = t
            r = dict(path=f"tile {TH}x{TW}x{cb}ch, {kind}",
                     min_bytes=x_bytes + y_bytes + w_bytes + b_bytes,
                     kernel_bytes=N * C * staged * elem + y_bytes + w_bytes + b_bytes)
        else:
            r = dict(path="per-element", min_bytes=x_bytes + y_bytes + w_bytes + b_bytes,
                     kernel_bytes=y_bytes + N * OC * math.prod(out) * taps * 2 * elem)
    elif direction == "grad_input":
        # tiles of grad_in's stride lattice; grad_out (all mult channels of an
        # input channel) staged once (grad_input_geometry in depthwise_cuda.cu)
        first = [p // s for p, s in zip(pad, stride)]
        lattice = [(n - 1 + p) // s - a + 1 for n, p, s, a in zip(size, pad, stride, first)]
        halo = tuple((k - 1) * d // s for k, d, s in zip(kernel, dil, stride))
        shift = tuple(h - a for h, a in zip(halo, first))
        t = plan_tile(*out, *lattice, C, halo, (1, 1), shift, elem, cl,
                      vec_ok(OC, out[-1]), sc=mult)
        if t:
            cb, TH, TW, staged, _ = t
            phases = math.prod(stride)
            path = f"tile {TH}x{TW}x{cb}ch" + (f" x {phases} phases" if phases > 1 else "")
            r = dict(path=f"{path}, {kind}", min_bytes=x_bytes + y_bytes + w_bytes,
                     kernel_bytes=N * OC * staged * elem + x_bytes + w_bytes)
        else:
            per = max(1, taps // math.prod(stride))
            r = dict(path="per-element", min_bytes=x_bytes + y_bytes + w_bytes,
                     kernel_bytes=x_bytes + N * OC * math.prod(size) * per * 2 * elem)
    elif direction == "grad_weight":
        t = forward_tiles() if kernel in _FIXED_TAPS else None
        if t:  # tiles of the input, a fixed set per block, once per multiplier output
            cb, TH, TW, staged, tiles = t
            chunks = math.ceil(C / cb)
            splits = min(max(math.ceil(_GRAD_WEIGHT_BLOCKS / (chunks * mult)), 1),
                         max(N * tiles, 1))
            part = splits * OC * taps * acc
            r = dict(path=f"tile {TH}x{TW}x{cb}ch, {splits} splits",
                     min_bytes=x_bytes + y_bytes + w_bytes + 2 * part,
                     kernel_bytes=mult * N * C * staged * elem + y_bytes + w_bytes + 2 * part)
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
