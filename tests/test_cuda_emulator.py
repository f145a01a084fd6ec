"""The CUDA backend's kernels run on the CPU: csrc/ops/cuda compiled as host
C++ against the test-only emulator in tests/cuda_emulator (CPU fibers per
CUDA thread, with bounds, shared-memory race / unwritten-read and barrier
checks). Every op of the CUDA backend is compared with torch in float64, with
the GPU tests' error bounds (tests/test_cuda.py), over shapes picked to take
every path, tile config and threshold side of the host launch code, which is
the same code as on a GPU. The emulated device's SM count is set per case,
since launch sizes and path choices depend on it. The checkers themselves are
proven by test-only kernels with one defect each.
"""
import math
import os
import sys
from collections import Counter
from dataclasses import dataclass, replace

import pytest
import torch
import torch.nn.functional as F
from torch.nn import grad as nn_grad

from conftest import ConvCase
from convext.functional import _same_padding

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cuda_emulator  # noqa: E402

pytestmark = pytest.mark.cuda_emulator

UNIT = {torch.float64: 2.0 ** -53, torch.float32: 2.0 ** -24,
        torch.float16: 2.0 ** -11, torch.bfloat16: 2.0 ** -8}
DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]


@pytest.fixture(scope="module")
def emu():
    return cuda_emulator.load()


@pytest.fixture(autouse=True)
def exact_float32():
    """float32 at full precision (TF32 off), so every float32 case checks the
    float32 bound; the TF32 kernel has its own tests (test_cuda_mma.py)."""
    old = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32 = old


def bound(ref, mag, k, dtype):
    """tests/test_cuda.py's bound: gamma(k + 2) * sum|a*b| + one rounding."""
    acc = UNIT[torch.float64] if dtype == torch.float64 else UNIT[torch.float32]
    n = k + 2
    return n * acc / (1 - n * acc) * mag + UNIT[dtype] * ref.abs() + torch.finfo(dtype).tiny


def assert_within(got, ref, mag, k, dtype, what):
    assert got.shape == ref.shape and got.dtype == dtype, (what, got.shape, ref.shape, got.dtype)
    if ref.numel() == 0:
        return
    err = (got.double() - ref).abs()
    tol = bound(ref, mag, k, dtype)
    bad = ~(err <= tol)  # NaN (an element no kernel wrote) fails too
    assert not bad.any(), (f"{what} ({dtype}): {int(bad.sum())}/{err.numel()} off, first at "
                           f"{tuple(bad.nonzero()[0].tolist())}, max error {err.max():.3g}")


@dataclass(frozen=True)
class Emulated:
    conv: ConvCase
    sm: int = 4              # the emulated device's SM count
    layout: str = "nchw"     # nchw, channels_last, strided
    extra: int = 0           # grad_input: input rows/cols beyond the conv minimum
    index64: bool = False    # 64-bit index variants (the 32-bit limit set to 0)


def Case(dims, N, C, OC, size, kernel, stride=1, padding=0, dilation=1, groups=1, bias=True,
         **emulated):
    return Emulated(ConvCase(dims, N, C, OC, size, kernel, stride, padding, dilation, groups,
                             bias), **emulated)


def c1(N, C, OC, L, K, s=1, p=0, d=1, g=1, **emulated):
    return Case(1, N, C, OC, (L,), (K,), s, p, d, g, **emulated)


# What each case is for; GEMM sides: forward M=OC/G, N=N*OH*OW, K=C/G*taps;
# grad_weight M=OC/G, N=C/G*taps, K=N*OH*OW; grad_input per stride phase.
CASES = {
    # small tiles, one block; the three layouts
    "plain": Case(2, 2, 8, 16, (13, 11), (3, 3), padding=(1, 1)),
    "plain_cl": Case(2, 2, 8, 16, (13, 11), (3, 3), padding=(1, 1), layout="channels_last"),
    "plain_strided": Case(2, 2, 8, 16, (13, 11), (3, 3), padding=(1, 1), layout="strided"),
    # stride phases with several taps each, stride > kernel (tapless phases),
    # dilation sharing a factor with the stride, image smaller than the stride
    "strided": Case(2, 2, 6, 10, (15, 16), (3, 2), (2, 3), (1, 0)),
    "stride_gt_kernel": Case(2, 2, 4, 6, (11, 13), (2, 2), (3, 4), (1, 0), layout="channels_last"),
    "dilated": Case(2, 1, 5, 7, (14, 12), (3, 3), (1, 2), (2, 1), (2, 3)),
    "dilation_gcd": Case(2, 2, 3, 5, (17, 15), (3, 3), (4, 2), (2, 1), (2, 4)),
    "tiny_image": Case(2, 2, 3, 4, (2, 3), (3, 3), (5, 4), (1, 1), layout="strided"),
    "same_even": Case(2, 2, 4, 6, (9, 8), (4, 3), padding="same", dilation=(1, 2)),
    # output_padding: grad_input for an input larger than the conv minimum
    "extra_rows": Case(2, 2, 4, 6, (10, 9), (3, 3), (3, 2), (1, 1), extra=2),
    "extra_cols_cl": Case(2, 1, 4, 6, (9, 10), (2, 3), (2, 3), (0, 1), extra=1,
                          layout="channels_last"),
    "grouped": Case(2, 2, 12, 18, (9, 10), (3, 3), (2, 1), (1, 1), groups=3),
    "grouped_cl": Case(2, 2, 12, 18, (9, 10), (3, 3), (2, 1), (1, 1), groups=3,
                       layout="channels_last"),
    # 8 / 72 channels a group: tensor-core grad_weight per group, 128x128 tiles
    "grouped_cl_mma": Case(2, 1, 16, 144, (5, 5), (3, 3), padding=(1, 1), groups=2,
                           layout="channels_last"),
    "empty_batch": Case(2, 0, 4, 6, (7, 7), (3, 3), padding=(1, 1)),
    "no_bias_1x1": Case(2, 3, 8, 5, (5, 7), (1, 1), bias=False, layout="strided"),
    # tile and split thresholds (sm: the emulated SM count)
    "m64_n64": Case(2, 1, 4, 64, (8, 8), (3, 3), padding=(1, 1), sm=1),   # M = N = 64: small
    "big_tiles": Case(2, 1, 4, 65, (9, 9), (3, 3), padding=(1, 1), sm=1),  # M, N = 65, 81: big
    "big_tiles_underfill": Case(2, 1, 4, 65, (9, 9), (3, 3), padding=(1, 1), sm=2),
    "big_grad_input": Case(2, 1, 65, 8, (9, 9), (3, 3), padding=(1, 1), sm=1, layout="strided"),
    "big_grad_weight": Case(2, 1, 8, 72, (6, 6), (3, 3), padding=(1, 1), sm=1),  # N = 72 taps
    "big_strided_cl": Case(2, 2, 66, 70, (10, 9), (3, 3), (2, 1), (1, 1), sm=1,
                           layout="channels_last"),
    "big_grouped_strided": Case(2, 1, 132, 130, (17, 17), (3, 3), (2, 2), (1, 1), groups=2, sm=2,
                                layout="strided", extra=1),
    "split_k": Case(2, 1, 32, 8, (6, 6), (3, 3), padding=(1, 1), sm=4),    # K = 288: 2 splits
    "split_k_big": Case(2, 1, 16, 72, (9, 9), (3, 3), padding=(1, 1), sm=1),
    "split_k_grouped_cl": Case(2, 1, 64, 8, (5, 5), (3, 3), padding=(1, 1), groups=2, sm=2,
                               layout="channels_last"),
    # grad_weight K = 6400: splits that fill the GPU
    "long_reduction": Case(2, 4, 3, 4, (40, 40), (3, 3), padding=(1, 1), sm=1),
    # depthwise (direct kernels): multipliers, splits of grad_weight, grid-stride loops
    "depthwise": Case(2, 2, 8, 8, (12, 12), (3, 3), padding=(1, 1), groups=8),
    "depthwise_mult_cl": Case(2, 2, 4, 12, (11, 10), (5, 3), (2, 2), (2, 1), (1, 2), groups=4,
                              layout="channels_last"),
    "depthwise_strided": Case(2, 1, 3, 6, (10, 11), (3, 2), (3, 1), (0, 1), groups=3,
                              layout="strided", extra=2),
    "depthwise_split": Case(2, 2, 2, 2, (64, 66), (3, 3), padding=(1, 1), groups=2, sm=8),
    "depthwise_loop": Case(2, 2, 4, 4, (33, 33), (3, 3), padding=(1, 1), groups=4, sm=1),
    "depthwise_index64": Case(2, 2, 4, 8, (9, 10), (3, 3), (2, 1), (1, 1), groups=4, sm=1,
                              layout="strided", index64=True),
    # split_reduce's grid-stride loop: 32 x 32 x 9 partial sums on one SM
    "reduce_loop": Case(2, 1, 32, 32, (4, 4), (3, 3), padding=(1, 1), sm=1),
    # depthwise, tiled kernels (multiplier 1): each compile-time tap shape and
    # the runtime-tap one, plane tiles (NCHW) and channel blocks (channels
    # fastest), 16-byte loads with partial vectors at the edges ("cropped":
    # a view of a wider buffer), tiles and channel blocks cut by the edges
    "dw3_cl": Case(2, 2, 40, 40, (13, 11), (3, 3), padding=(1, 1), groups=40,
                   layout="channels_last"),
    "dw3_cropped": Case(2, 2, 3, 3, (10, 29), (3, 3), padding=(1, 1), groups=3, layout="cropped"),
    "dw3_cl_cropped": Case(2, 2, 11, 11, (6, 7), (3, 3), padding=(1, 1), groups=11,
                           layout="cl_cropped"),
    "dw5_s2_cl": Case(2, 2, 8, 8, (15, 13), (5, 5), (2, 2), (2, 2), groups=8,
                      layout="channels_last"),
    "dw7_same": Case(2, 1, 3, 3, (19, 70), (7, 7), padding="same", groups=3),
    "dw3_s2_dilated": Case(2, 2, 4, 4, (17, 16), (3, 3), (2, 2), (2, 1), (2, 2), groups=4,
                           layout="strided", extra=1),
    "dw_runtime_taps": Case(2, 2, 6, 6, (9, 8), (4, 3), padding="same", dilation=(1, 2),
                            groups=6),
    # tiled grad_input over stride phases: MobileNet/EfficientNet-style stride
    # 2 (odd sizes, 3x3 / 5x5 / 7x7, both mappings), stride > kernel (phases
    # no tap reaches), padding past the stride with dilation, output_padding
    "dw3_s2": Case(2, 2, 5, 5, (13, 11), (3, 3), (2, 2), (1, 1), groups=5),
    "dw3_s2_cl": Case(2, 2, 16, 16, (9, 12), (3, 3), (2, 2), (1, 1), groups=16,
                      layout="channels_last"),
    "dw5_s2_cropped": Case(2, 1, 3, 3, (11, 27), (5, 5), (2, 2), (2, 2), groups=3,
                           layout="cropped", extra=1),
    "dw7_s2_cl": Case(2, 1, 8, 8, (15, 14), (7, 7), (2, 2), (3, 3), groups=8,
                      layout="channels_last", extra=1),
    "dw3_stride_gt_kernel": Case(2, 2, 3, 3, (16, 17), (3, 3), (4, 5), (1, 2), groups=3),
    "dw3_s2_pad_dilated": Case(2, 1, 2, 2, (13, 15), (3, 3), (2, 3), (3, 2), (3, 2),
                               groups=2, layout="strided"),
    "dw1d_s2_k3": c1(2, 8, 8, 41, 3, s=2, p=1, g=8),
    "dw1d_s2_k4_cl": c1(2, 16, 16, 37, 4, s=2, p=3, g=16, layout="channels_last", extra=1),
    # channel multiplier > 1 on the tiled kernels: grad_out planes (NCHW) or
    # channel groups (channels fastest) staged per input channel
    "dw3_mult2": Case(2, 2, 3, 6, (11, 13), (3, 3), padding=(1, 1), groups=3),
    "dw3_mult2_s2_cl": Case(2, 2, 8, 16, (9, 10), (3, 3), (2, 2), (1, 1), groups=8,
                            layout="channels_last"),
    "dw3_mult3_cl_odd": Case(2, 1, 5, 15, (7, 6), (3, 3), (1, 2), (1, 1), groups=5,
                             layout="channels_last"),
    "dw5_mult3_cropped": Case(2, 1, 3, 9, (8, 21), (5, 5), padding=(2, 2), groups=3,
                              layout="cropped"),
    "dw1d_mult2_k4": c1(2, 4, 8, 30, 4, p=3, g=4),
    "dw1d_mult2_s2_cl": c1(2, 8, 16, 25, 3, s=2, p=2, g=8, layout="channels_last"),
    # the halo does not fit the shared tile: per-element kernels (32- and
    # 64-bit index variants)
    "dw_tall_dilation": Case(2, 1, 4, 4, (205, 10), (3, 3), dilation=(100, 1), groups=4,
                             layout="channels_last"),
    "dw_wide_dilation": Case(2, 1, 2, 2, (125, 125), (3, 3), (1, 2), dilation=(60, 60),
                             groups=2),
    "dw_wide_dilation_index64": Case(2, 1, 2, 4, (125, 125), (3, 3), (2, 1), dilation=(60, 60),
                                     groups=2, layout="strided", index64=True),
    "dw_empty_batch": Case(2, 0, 4, 4, (7, 7), (3, 3), padding=(1, 1), groups=4),
    # 1D
    "dw1d_causal_k2": c1(2, 8, 8, 37, 2, p=1, g=8),
    "dw1d_causal_k3": c1(2, 8, 8, 37, 3, p=2, g=8, layout="channels_last"),
    "dw1d_causal_k4": c1(2, 8, 8, 300, 4, p=3, g=8),
    "dw1d_causal_k4_cl": c1(2, 40, 40, 70, 4, p=3, g=40, layout="channels_last"),
    "conv1d": c1(3, 6, 9, 40, 5, s=2, p=3, d=2),
    "conv1d_depthwise": c1(2, 6, 6, 33, 7, p=3, g=6),
    "conv1d_same": c1(2, 4, 5, 20, 4, p="same", d=3),
}


def lay_out(t, layout):
    """The same values in the case's memory layout; channels_last of a 3D
    tensor: channels fastest, as a transposed (N, L, C) tensor."""
    if layout == "channels_last" and t.dim() == 4:
        return t.contiguous(memory_format=torch.channels_last)
    if layout == "channels_last" and t.dim() == 3:
        return t.transpose(1, 2).contiguous().transpose(1, 2)
    if layout in ("cropped", "cl_cropped"):  # a view of a buffer wider in its contiguous dim
        dim = 1 if layout == "cl_cropped" else t.dim() - 1
        wide = list(t.shape)
        wide[dim] = (wide[dim] + 8) // 8 * 8
        buf = torch.zeros(wide, dtype=t.dtype)
        if dim == 1:
            buf = buf.contiguous(memory_format=torch.channels_last)
        out = buf.narrow(dim, 0, t.shape[dim])
        out.copy_(t)
        return out
    if layout == "strided":  # every second element of a wider buffer, last dim
        wide = torch.empty(*t.shape[:-1], 2 * t.shape[-1], dtype=t.dtype)
        wide[..., ::2] = t
        out = wide[..., ::2]
        assert not out.is_contiguous()
        return out
    return t


def case_tensors(case, dtype):
    """(input, weight, bias, [stride, padding, dilation, groups]) of a case,
    with 'same' padding made explicit."""
    c = case.conv
    x, w, b = c.make(dtype)
    stride, padding, dilation, groups = c.op_params()
    if c.padding == "same":
        x, padding = _same_padding(x, w, stride, dilation, groups, c.dims, None)
    return x, w, b, [stride, padding, dilation, groups]


def grad_input_size(case, x, out_shape, params):
    """The input size for grad_input: x's, plus `extra` rows/cols beyond the
    conv minimum (output_padding)."""
    stride, padding, dilation, _ = params
    in_size = list(x.shape)
    if case.extra:
        in_size[2:] = [(o - 1) * s - 2 * p + dl * (k - 1) + 1 + min(case.extra, s - 1)
                       for o, s, p, dl, k in zip(out_shape[2:], stride, padding, dilation,
                                                 case.conv.kernel)]
    return in_size


def run_case(emu, case, dtype):
    c = case.conv
    x, w, b, params = case_tensors(case, dtype)
    d = c.dims
    F_conv = getattr(F, f"conv{d}d")
    x64, w64 = x.double(), w.double()
    b64 = None if b is None else b.double()
    ref = F_conv(x64, w64, b64, *params)
    mag = F_conv(x64.abs(), w64.abs(), None if b64 is None else b64.abs(), *params)
    taps = math.prod(c.kernel)
    k_fwd, k_gi = c.C // c.groups * taps, c.OC // c.groups * taps

    xl, wl = lay_out(x, case.layout), lay_out(w, case.layout)
    out = getattr(emu, f"conv{d}d")(xl, wl, b, *params)
    assert_within(out, ref, mag, k_fwd, dtype, "forward")

    # grad_output: fresh values, in the case's layout
    go = lay_out(torch.randn(ref.shape, generator=torch.Generator().manual_seed(1),
                             dtype=torch.float64).to(dtype), case.layout)
    go64 = go.double()
    positions = ref.shape[0] * math.prod(ref.shape[2:])

    # grad_input, for the minimal input size plus `extra` rows/cols (output_padding)
    in_size = grad_input_size(case, x, ref.shape, params)
    in_fn = getattr(nn_grad, f"conv{d}d_input")
    gi_ref = in_fn(in_size, w64, go64, *params)
    gi_mag = in_fn(in_size, w64.abs(), go64.abs(), *params)
    gi = getattr(emu, f"conv{d}d_grad_input")(go, wl, in_size, *params)
    assert_within(gi, gi_ref, gi_mag, k_gi, dtype, "grad_input")

    w_fn = getattr(nn_grad, f"conv{d}d_weight")
    gw_ref = w_fn(x64, list(w.shape), go64, *params)
    gw_mag = w_fn(x64.abs(), list(w.shape), go64.abs(), *params)
    gw = getattr(emu, f"conv{d}d_grad_weight")(go, xl, list(w.shape), *params)
    assert_within(gw, gw_ref, gw_mag, positions, dtype, "grad_weight")

    gb = emu.conv_grad_bias(go)
    dims = [0] + list(range(2, go.dim()))
    assert_within(gb, go64.sum(dims), go64.abs().sum(dims), positions, dtype, "grad_bias")


LAUNCHES = Counter()


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda t: str(t)[6:])
@pytest.mark.parametrize("name", list(CASES))
def test_cuda_kernels_match_torch(emu, name, dtype):
    case = CASES[name]
    emu.set_sm_count(case.sm)
    emu.set_int32_index_limit(0 if case.index64 else 2 ** 30 - 1)
    before = Counter(emu.launch_counts())
    try:
        run_case(emu, case, dtype)
    finally:
        LAUNCHES.update(Counter(emu.launch_counts()) - before)
        emu.set_sm_count(4)
        emu.set_int32_index_limit(2 ** 30 - 1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=lambda t: str(t)[6:])
@pytest.mark.parametrize("name", ["plain_cl", "extra_rows", "depthwise"])
def test_grad_input_with_bias(emu, name, dtype):
    """grad_input with a bias (a transposed conv's, one per input channel): no
    CUDA kernel adds it in its store yet, so the op plumbing (conv_ops.h) sums
    in float32 and adds it there, rounding once. Against float64, with a bias
    of minus each channel's mean, so that results cancel."""
    case = CASES[name]
    x, w, _, params = case_tensors(case, dtype)
    d = case.conv.dims
    go = lay_out(torch.rand(getattr(F, f"conv{d}d")(x, w, None, *params).shape,
                            generator=torch.Generator().manual_seed(1),
                            dtype=torch.float64).to(dtype), case.layout)
    w64, go64 = w.double(), go.double()
    in_size = grad_input_size(case, x, go.shape, params)
    in_fn = getattr(nn_grad, f"conv{d}d_input")
    ref = in_fn(in_size, w64, go64, *params)
    dims = [0] + list(range(2, ref.dim()))
    b = -ref.mean(dims).to(dtype)
    view = [1, -1] + [1] * d
    ref = ref + b.double().view(view)
    mag = in_fn(in_size, w64.abs(), go64.abs(), *params) + b.double().abs().view(view)
    got = getattr(emu, f"conv{d}d_grad_input")(go, lay_out(w, case.layout), in_size, *params,
                                               bias=b)
    k = case.conv.OC // case.conv.groups * math.prod(case.conv.kernel) + 1
    assert_within(got, ref, mag, k, dtype, "grad_input with bias")


@pytest.mark.parametrize("name", ["depthwise_split", "dw3_cl", "dw1d_causal_k4_cl"])
def test_depthwise_same_bits_on_any_gpu(emu, name):
    """Depthwise forward, grad_input and grad_weight give the same bits on
    GPUs with different SM counts: launch shapes, and grad_weight's split of
    the positions (so its order of sums), depend only on the problem's sizes
    (with a split count from sm_count, "depthwise_split" takes 2 splits on 1
    SM and 14 on 7, and its float32 grad_weight differs)."""
    case = CASES[name]
    c = case.conv
    stride, padding, dilation, groups = c.op_params()
    params = [stride, padding, dilation, groups]
    d = c.dims
    for dtype in (torch.float32, torch.bfloat16):
        x, w, b = c.make(dtype)
        xl, wl = lay_out(x, case.layout), lay_out(w, case.layout)
        runs = []
        for sm in (1, 7):
            emu.set_sm_count(sm)
            try:
                out = getattr(emu, f"conv{d}d")(xl, wl, b, *params)
                go = lay_out(torch.randn(out.shape, generator=torch.Generator().manual_seed(1),
                                         dtype=torch.float64).to(dtype), case.layout)
                runs.append([out, getattr(emu, f"conv{d}d_grad_input")(go, wl, list(x.shape),
                                                                       *params),
                             getattr(emu, f"conv{d}d_grad_weight")(go, xl, list(w.shape),
                                                                   *params)])
            finally:
                emu.set_sm_count(4)
        for what, one, seven in zip(("forward", "grad_input", "grad_weight"), *runs):
            assert torch.equal(one, seven), (what, dtype, (one.double() - seven).abs().max())


@pytest.mark.parametrize("name", ["dw3_s2", "dw3_s2_cl", "dw7_s2_cl", "dw1d_s2_k4_cl",
                                  "dw3_stride_gt_kernel", "dw3_mult2", "dw3_mult2_s2_cl",
                                  "dw5_mult3_cropped", "dw1d_mult2_s2_cl"])
def test_depthwise_takes_the_tiled_kernels(emu, name):
    """Strided grad_input and channel multipliers > 1 run on the tiled
    kernels (forward, grad_input and grad_weight), not the per-element ones."""
    before = Counter(emu.launch_counts())
    run_case(emu, CASES[name], torch.float32)
    ran = " ".join(Counter(emu.launch_counts()) - before)
    for kernel in ("dw_forward_kernel", "dw_grad_input_kernel", "dw_grad_weight_kernel"):
        assert f"::{kernel}<" not in ran, (kernel, ran)
    for kernel in ("dw_tile_kernel", "dw_tile_grad_input_kernel", "dw_tile_grad_weight_kernel"):
        assert f"::{kernel}<" in ran, (kernel, ran)


def igemm_blocks(emu):
    return sum(n for k, n in emu.block_counts().items() if "igemm_kernel" in k)


@pytest.mark.parametrize("case", [
    c1(1, 2, 3, 3000, 3, s=1000, p=1),
    Case(2, 1, 2, 3, (200, 300), (2, 3), (100, 150), (0, 1), dilation=(1, 2)),
], ids=["conv1d", "conv2d"])
def test_grad_input_grid_does_not_grow_with_the_stride(emu, case):
    """Regression: grad_input launched a block per stride phase, most of them
    tapless (all zeros), so the grid grew with stride_h * stride_w (and a huge
    stride failed the one-launch size check). Now only phases that a tap
    reaches are launched, at most KH * KW, after a zero fill."""
    for dtype in (torch.float32, torch.float64):
        before = igemm_blocks(emu)
        run_case(emu, case, dtype)
        gemms = 2  # forward and grad_weight, one block each at these sizes
        assert igemm_blocks(emu) - before <= gemms + math.prod(case.conv.kernel)


def test_every_kernel_config_ran(emu):
    """Each kernel template ran, for every dtype, in each tile config."""
    if len(LAUNCHES) == 0:
        pytest.skip("run together with test_cuda_kernels_match_torch")
    names = " ".join(LAUNCHES)
    for dtype in ("float", "double", "c10::Half", "c10::BFloat16"):
        for kernel in ("igemm_kernel", "split_reduce_kernel", "bias_partial_kernel",
                       "dw_forward_kernel", "dw_grad_input_kernel", "dw_grad_weight_kernel"):
            assert any(f"::{kernel}<{dtype}," in k for k in LAUNCHES), (kernel, dtype)
        for kernel in ("bias_partial_kernel", "dw_forward_kernel", "dw_grad_input_kernel",
                       "dw_grad_weight_kernel"):
            for index in ("int", "long int"):
                assert f"::{kernel}<{dtype}, {index}>" in names, (kernel, dtype, index)
        for taps in ("3, 3", "5, 5", "7, 7", "1, 2", "1, 3", "1, 4", "0, 0"):
            assert f"::dw_tile_kernel<{dtype}, {taps}>" in names, (dtype, taps)
            assert f"::dw_tile_grad_input_kernel<{dtype}, {taps}>" in names, (dtype, taps)
            if taps != "0, 0":
                assert f"::dw_tile_grad_weight_kernel<{dtype}, {taps}>" in names, (dtype, taps)
    for tile in ("TileCfg<64, 64, 16, 4, 4>", "TileCfg<128, 128, 8, 8, 8>"):
        assert tile in names
    for dtype in ("c10::Half", "c10::BFloat16"):  # plain_cl: the tensor-core grad_input
        assert any("::igemm_mma_grad_input_kernel<" in k and f"MmaPolicy<{dtype}," in k
                   for k in LAUNCHES), dtype
        # and grad_weight: plain_cl 64x64, grouped_cl_mma 128x128 (float: TF32 is off
        # here; test_cuda_mma_wgrad.py checks its instantiations ran)
        for tile in ("64, 64, 2, 2, 3, 4", "128, 128, 2, 4, 3, 2"):
            assert f"::igemm_mma_wgrad_kernel<KMajorPolicy<{dtype}, {tile}> >" in names, tile
    path = os.path.join(cuda_emulator.build_dir(), "launches.txt")
    with open(path, "w") as f:
        for k, n in sorted(LAUNCHES.items()):
            f.write(f"{n:6d} {k}\n")


# --- the checkers trip --------------------------------------------------------

X = torch.arange(64, dtype=torch.float32)


def test_correct_kernels_pass(emu):
    assert torch.equal(emu.rotate(X, 1, True), X.roll(-1))
    assert torch.equal(emu.rotate(X, -1, True), X.roll(1))
    sums, ballots, count = emu.warp_ops(X)
    assert sums.tolist() == [X[:32].sum().item(), X[32:].sum().item()]
    assert ballots.tolist() == [-0x55555556, -0x55555556]  # 0xaaaaaaaa: the odd lanes
    assert count.item() == 64


@pytest.mark.parametrize("call, message", [
    (lambda m: m.rotate(X, -1, False), r"rotate_kernel.*shared-memory race: read of 'buf' at "
     r"address 0x[0-9a-f]+ written by thread \(0,0,0\) with no barrier between in block "
     r"\(0,0,0\), thread \(1,0,0\)"),
    (lambda m: m.rotate(X, 1, False), r"rotate_kernel.*shared-memory race: write to 'buf' at "
     r"address 0x[0-9a-f]+ read by thread \(0,0,0\)"),
    (lambda m: m.reuse_buffer(X), r"reuse_buffer_kernel.*shared-memory race: write to 'buf'.* "
     r"read by thread \(0,0,0\) with no barrier between in block \(0,0,0\), thread \(1,0,0\)"),
    (lambda m: m.overrun(X, False), r"overrun_kernel.*out-of-bounds global read of 4 bytes at "
     r"address 0x[0-9a-f]+ \(256 bytes from the start of input tensor \[64\].*thread \(63,0,0\)"),
    (lambda m: m.overrun(X, True), r"overrun_kernel.*out-of-bounds global write of 4 bytes .*256 "
     r"bytes from the start of output tensor \[64\].* in block \(1,0,0\), thread \(0,0,0\)"),
    (lambda m: m.write_input(X), r"write to read-only input tensor \[64\]"),
    (lambda m: m.divergent_barrier(X), r"divergent_barrier_kernel.*__syncthreads at "
     r".*faulty_kernels.cpp:\d+ not reached by every thread: 32 exited without it"),
    (lambda m: m.split_barrier(X), r"split_barrier_kernel.*divergent __syncthreads: thread "
     r"\(0,0,0\) waits at .*faulty_kernels.cpp:\d+, thread \(\d+,0,0\) at .*faulty_kernels"),
    (lambda m: m.shuffle_deadlock(X), r"shuffle_deadlock_kernel.*warp exchange \(mask "
     r"0xffffffff\) .* waits for lane 0, which has exited"),
    (lambda m: m.uninitialised_shared(X), r"uninitialised_shared_kernel.*read of uninitialised "
     r"shared memory 'buf' at address 0x[0-9a-f]+ in block \(0,0,0\), thread \(63,0,0\)"),
    (lambda m: m.shared_overrun(X), r"shared_overrun_kernel.*out-of-bounds shared access "
     r"'buf'\[64\] \(64 elements\).*thread \(63,0,0\)"),
], ids=["raw_race", "war_race", "double_buffer_race", "global_read_overrun",
        "global_write_overrun", "write_to_input", "barrier_not_reached", "divergent_barrier",
        "warp_deadlock", "uninitialised_shared", "shared_overrun"])
def test_checker_trips(emu, call, message):
    with pytest.raises(RuntimeError, match=message):
        call(emu)
