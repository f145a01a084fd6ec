"""The tensor-core weight gradient (csrc/ops/cuda/igemm_mma_wgrad.cuh) and
the GPU-model independence of every split reduction, on the CPU emulator.

grad_weight for half types, and float32 in TF32 when torch allows it (NCHW
operands from NHWC copies, the channels_last run's bits), runs on mma.sync with k-major shared tiles (ldmatrix .trans, or
32-bit fragment loads + cvt.rna for TF32), one GEMM per group, and a
deterministic split of the reduction over output positions. Results are
compared with torch in float64 under the emulated suite's bounds (TF32: the
bound of 10-bit-mantissa operands); each case asserts which kernel and tile
ran. The split counts depend only on the problem's sizes, never on the
device's SM count, so results must be bitwise equal on emulated devices of
different sizes.
"""
import math
import os
import sys
from collections import Counter

import pytest
import torch
from torch.nn import grad as nn_grad

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cuda_emulator  # noqa: E402
from test_cuda_emulator import Case, assert_within, bound, c1  # noqa: E402
from test_cuda_mma import rna_tf32, tf32  # noqa: E402

pytestmark = pytest.mark.cuda_emulator

MMA_KERNEL = "igemm_mma_wgrad_kernel"
SIMT_KERNEL = "igemm_kernel"
T_NAMES = {torch.float16: "c10::Half", torch.bfloat16: "c10::BFloat16", torch.float32: "float"}
TILES = {64: "64, 64, 2, 2, 3, 4", 128: "128, 128, 2, 4, 3, 2"}  # KMajorPolicy<T, ...>
HALF = [torch.float16, torch.bfloat16]


@pytest.fixture(scope="module")
def emu():
    return cuda_emulator.load()


def channels_last(t):
    """The same values with the channel dim fastest (1D and 2D)."""
    return t.movedim(1, -1).contiguous().movedim(-1, 1)


# channels_last, channels per group multiples of 8 (halves; 4 for float):
# the tensor-core path, with the tile the host must pick (128x128 where both
# sides of a group's GEMM are over 64). GEMM sides per group: M = OC/G,
# N = KH*KW*C/G, reduction Q = N*OH*OW (32 halves / 16 floats a step at 64x64).
MMA_CASES = {
    # Q = 286, N = 72, M = 24: partial tiles on every side
    "edges": (Case(2, 2, 8, 24, (13, 11), (3, 3), padding=(1, 1)), 64),
    # M = 72 x N = 96: 128x128, partial; stride, dilation, asymmetric padding
    "wide": (Case(2, 1, 16, 72, (9, 10), (2, 3), (2, 1), (1, 0), (1, 2), bias=False), 128),
    # Q = 1152: split in 4 (8 steps each), the 3-stage ring wraps in every split
    "long_q": (Case(2, 2, 8, 8, (24, 24), (3, 3), padding=(1, 1)), 64),
    # stride larger than the kernel: input rows no tap reads
    "one_by_one": (Case(2, 3, 32, 8, (5, 7), (1, 1), (2, 2)), 64),
    # OW = 3 < one step of positions: several rows and images per step
    "tiny_image": (Case(2, 5, 8, 16, (3, 3), (3, 3), padding=(1, 1)), 64),
    "conv1d": (c1(3, 16, 8, 50, 3, s=2, p=1, d=2), 64),
    # groups: per-group blocks, grad_out channels, input channels and partial
    # rows offset per group
    "grouped": (Case(2, 2, 16, 16, (7, 7), (3, 3), padding=(1, 1), groups=2), 64),
    "grouped_strided": (Case(2, 2, 48, 72, (9, 10), (2, 3), (2, 1), (1, 0), (1, 2), groups=3),
                        64),
    # M = 72 x N = 144 per group: 128x128 tiles in each of 2 groups
    "grouped_128": (Case(2, 1, 32, 144, (5, 5), (3, 3), padding=(1, 1), groups=2), 128),
    "conv1d_grouped": (c1(2, 32, 16, 33, 3, p=1, g=2), 64),
    # Q = 1152 in 4 splits, per group
    "grouped_long_q": (Case(2, 2, 16, 16, (24, 24), (3, 3), padding=(1, 1), groups=2), 64),
    # ResNeXt-50's grouped 3x3 of stage 3: 512 channels in 32 groups of 16
    "resnext_g32_512": (Case(2, 1, 512, 512, (4, 4), (3, 3), padding=(1, 1), groups=32), 64),
}
# float32 (TF32) only: 4 channels a group are one 16-byte vector of floats
# (ResNeXt-50's stage 1: 128 channels in 32 groups), 8 halves are not
TF32_ONLY = {
    "resnext_g32_128": (Case(2, 1, 128, 128, (5, 5), (3, 3), padding=(1, 1), groups=32), 64),
}
# what the SIMT kernels keep: channels (per group) not a whole 16-byte
# vector, 8 halves or 4 floats
FALLBACK_CASES = {
    "c_not_8": (Case(2, 2, 12, 16, (7, 7), (3, 3), padding=(1, 1)), torch.float16),
    "oc_not_8": (Case(2, 2, 8, 12, (7, 7), (3, 3), padding=(1, 1)), torch.bfloat16),
    "c_not_4": (Case(2, 2, 6, 16, (7, 7), (3, 3), padding=(1, 1)), torch.float32),
    "oc_not_4": (Case(2, 2, 8, 10, (7, 7), (3, 3), padding=(1, 1)), torch.float32),
    "grouped_unaligned": (Case(2, 2, 12, 18, (9, 10), (3, 3), (2, 1), (1, 1), groups=3),
                          torch.float16),
    "grouped_unaligned_tf32": (Case(2, 2, 12, 18, (9, 10), (3, 3), (2, 1), (1, 1), groups=3),
                               torch.float32),
    # ResNeXt-50's stage 1: 4 channels a group, half a vector of halves
    "resnext_g32_128_half": (TF32_ONLY["resnext_g32_128"][0], torch.float16),
}


def launches(emu, name):
    return Counter({k: n for k, n in emu.launch_counts().items() if f"::{name}<" in k})


def grad_weight(emu, case, dtype, layout=channels_last, tf32_on=False):
    """grad_weight on the emulator, checked against torch in float64 (float32
    with TF32 on: within the TF32 bound, below); returns it with the
    tensor-core launches (name -> count) and the number of SIMT GEMM
    launches it took."""
    c = case.conv
    x, w, _ = c.make(dtype)
    stride, padding, dilation, groups = c.op_params()
    conv = getattr(torch.nn.functional, f"conv{c.dims}d")
    out_shape = conv(x.double(), w.double(), None, stride, padding, dilation, groups).shape
    go = torch.randn(out_shape, generator=torch.Generator().manual_seed(1),
                     dtype=torch.float64).to(dtype)
    w_fn = getattr(nn_grad, f"conv{c.dims}d_weight")
    params = (stride, padding, dilation, groups)
    ref = w_fn(x.double(), list(w.shape), go.double(), *params)
    mag = w_fn(x.double().abs(), list(w.shape), go.double().abs(), *params)
    before = launches(emu, MMA_KERNEL), sum(launches(emu, SIMT_KERNEL).values())
    gw = getattr(emu, f"conv{c.dims}d_grad_weight")(layout(go), layout(x), list(w.shape),
                                                    *params)
    positions = out_shape[0] * math.prod(out_shape[2:])
    if tf32_on:
        ref_tf32 = w_fn(rna_tf32(x).double(), list(w.shape), rna_tf32(go).double(), *params)
        assert_tf32(gw, ref, ref_tf32, mag, positions)
    else:
        assert_within(gw, ref, mag, positions, dtype, "grad_weight")
    return (gw, launches(emu, MMA_KERNEL) - before[0],
            sum(launches(emu, SIMT_KERNEL).values()) - before[1])


def assert_tf32(got, ref, ref_tf32, mag, k):
    """TF32 ran: within the bound of 10-bit-mantissa operands (cvt.rna: each
    within 2^-11 relative, so each product within about 2^-10 |a||b|) plus
    float32 accumulation over the k = N*OH*OW positions; within the float32
    bound of the product of the rounded operands; and nearer to that than to
    the exact result (full float32 products would be the other way round)."""
    tol = bound(ref, mag, k, torch.float32) + 2 * 2.0 ** -11 * mag
    err = (got.double() - ref).abs()
    assert (err <= tol).all(), f"TF32: max error {err.max():.3g}"
    assert_within(got, ref_tf32, mag, k, torch.float32, "TF32 vs rounded operands")
    assert (got.double() - ref_tf32).abs().sum() < err.sum(), "full float32 products"


WGRAD_RAN = Counter()


def one_launch(got, dtype, tile):
    """Exactly one tensor-core launch, of the given tile for the dtype."""
    assert sum(got.values()) == 1, got
    name = next(iter(got))
    assert f"KMajorPolicy<{T_NAMES[dtype]}, {TILES[tile]}>" in name, name
    WGRAD_RAN[name] += 1


@pytest.mark.parametrize("dtype", HALF, ids=["f16", "bf16"])
@pytest.mark.parametrize("name", MMA_CASES)
def test_mma_grad_weight(emu, name, dtype):
    case, tile = MMA_CASES[name]
    _, mma, simt = grad_weight(emu, case, dtype)
    one_launch(mma, dtype, tile)
    assert simt == 0


@pytest.mark.parametrize("name", list(MMA_CASES) + list(TF32_ONLY))
def test_mma_grad_weight_tf32(emu, name):
    case, tile = {**MMA_CASES, **TF32_ONLY}[name]
    with tf32(True):
        _, mma, simt = grad_weight(emu, case, torch.float32, tf32_on=True)
    one_launch(mma, torch.float32, tile)
    assert simt == 0


@pytest.mark.parametrize("name", ["edges", "grouped_128", "conv1d_grouped"])
def test_mma_grad_weight_tf32_off_is_exact_simt(emu, name):
    """TF32 off: float32 in full precision on the SIMT kernels (the float32
    bound, which TF32 products do not meet at these sizes)."""
    with tf32(False):
        _, mma, simt = grad_weight(emu, MMA_CASES[name][0], torch.float32)
    assert sum(mma.values()) == 0 and simt == 1


def test_mma_grad_weight_splits(emu):
    """long_q's reduction is split (several blocks per output tile), the
    others' is not; the grid is splits x groups x tiles whatever the SM count."""
    counts = {}
    for sm in (1, 132):
        emu.set_sm_count(sm)
        try:
            for name in ("edges", "long_q", "grouped_128", "grouped_long_q"):
                before = sum(n for k, n in emu.block_counts().items() if MMA_KERNEL in k)
                grad_weight(emu, MMA_CASES[name][0], torch.float16)
                counts[sm, name] = sum(
                    n for k, n in emu.block_counts().items() if MMA_KERNEL in k) - before
        finally:
            emu.set_sm_count(4)
    assert counts[1, "edges"] == counts[132, "edges"] == 2        # 1 m tile x 2 n tiles
    assert counts[1, "long_q"] == counts[132, "long_q"] == 4 * 2  # 4 splits x 2 n tiles
    assert counts[1, "grouped_128"] == counts[132, "grouped_128"] == 2 * 2  # groups x n tiles
    assert counts[1, "grouped_long_q"] == counts[132, "grouped_long_q"] == 4 * 2 * 2


@pytest.mark.parametrize("name", FALLBACK_CASES)
def test_mma_grad_weight_fallback(emu, name):
    case, dtype = FALLBACK_CASES[name]
    with tf32(True):  # the SIMT kernels are full float32 whatever the setting
        _, mma, simt = grad_weight(emu, case, dtype)
    assert sum(mma.values()) == 0 and simt == 1


def test_mma_grad_weight_not_for_double(emu):
    _, mma, simt = grad_weight(emu, MMA_CASES["edges"][0], torch.float64)
    assert sum(mma.values()) == 0 and simt == 1


@pytest.mark.parametrize("dtype", HALF + [torch.float32], ids=["f16", "bf16", "tf32"])
@pytest.mark.parametrize("name", ["edges", "wide", "long_q", "conv1d", "grouped_strided"])
def test_mma_grad_weight_nchw_copies_to_nhwc(emu, name, dtype):
    """NCHW (N, C, L) grad_out and input: copied to NHWC, the tensor-core
    kernel and tile of the channels_last run, and its bits exactly."""
    case, tile = MMA_CASES[name]
    on = dtype == torch.float32
    with tf32(on):
        want, mma_cl, _ = grad_weight(emu, case, dtype, tf32_on=on)
        gw, mma, simt = grad_weight(emu, case, dtype, layout=lambda t: t, tf32_on=on)
    one_launch(mma_cl, dtype, tile)
    one_launch(mma, dtype, tile)
    assert simt == 0 and torch.equal(gw, want)


@pytest.mark.parametrize("name", ["c_not_8", "oc_not_4", "grouped_unaligned"])
def test_mma_grad_weight_nchw_unaligned_stays_simt(emu, name):
    """NCHW is copied to NHWC only for problems the kernel takes."""
    case, dtype = FALLBACK_CASES[name]
    with tf32(True):
        _, mma, simt = grad_weight(emu, case, dtype, layout=lambda t: t)
    assert sum(mma.values()) == 0 and simt == 1


def test_mma_grad_weight_empty_batch(emu):
    case = Case(2, 0, 8, 16, (7, 7), (3, 3), padding=(1, 1))
    gw, mma, _ = grad_weight(emu, case, torch.float16)
    assert sum(mma.values()) == 0 and torch.equal(gw, torch.zeros_like(gw))


def test_mma_every_wgrad_tile_ran(emu):
    """Each of the 6 instantiations (2 tiles x f16, bf16, float) launched."""
    if not WGRAD_RAN:
        pytest.skip("run together with the tests above")
    for t in T_NAMES.values():
        for tile in TILES.values():
            assert any(f"KMajorPolicy<{t}, {tile}>" in k for k in WGRAD_RAN), (t, tile)


# --- split counts depend on the problem only ----------------------------------

SPLIT_CASES = {
    "simt_split": (Case(2, 4, 3, 4, (40, 40), (3, 3), padding=(1, 1)), torch.float32, None),
    "simt_split_big": (Case(2, 1, 16, 72, (9, 9), (3, 3), padding=(1, 1)), torch.float32, None),
    "mma": (MMA_CASES["long_q"][0], torch.float16, channels_last),
    "mma_grouped": (MMA_CASES["grouped_long_q"][0], torch.bfloat16, channels_last),
    "mma_tf32": (MMA_CASES["long_q"][0], torch.float32, channels_last),
    "mma_tf32_grouped": (MMA_CASES["grouped_long_q"][0], torch.float32, channels_last),
}


@pytest.mark.parametrize("name", SPLIT_CASES)
def test_grad_weight_bitwise_equal_across_sm_counts(emu, name):
    case, dtype, layout = SPLIT_CASES[name]
    on = layout is not None and dtype == torch.float32  # TF32 on the tensor cores
    results = []
    for sm in (1, 132):
        emu.set_sm_count(sm)
        try:
            with tf32(on):
                gw, mma, _ = grad_weight(emu, case, dtype, layout or (lambda t: t), tf32_on=on)
            assert sum(mma.values()) == (layout is not None)
            results.append(gw)
        finally:
            emu.set_sm_count(4)
    assert torch.equal(results[0], results[1])


@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
def test_grad_bias_bitwise_equal_across_sm_counts(emu, layout):
    """Both grad_bias kernels: one channel a block (planes), and 32-channel
    tiles with coalesced loads (channels innermost; 70 channels leave a
    partial tile)."""
    C = 3 if layout == "nchw" else 70
    go = torch.randn(8, C, 40, 40, generator=torch.Generator().manual_seed(2))
    if layout == "channels_last":
        go = go.contiguous(memory_format=torch.channels_last)
    kernel = "bias_partial_kernel" if layout == "nchw" else "bias_runs_kernel"
    results = []
    for sm in (1, 132):
        emu.set_sm_count(sm)
        try:
            before = Counter(emu.launch_counts())
            results.append(emu.conv_grad_bias(go))
            ran = " ".join(Counter(emu.launch_counts()) - before)
            assert f"::{kernel}<" in ran, ran
        finally:
            emu.set_sm_count(4)
    assert torch.allclose(results[0], go.double().sum((0, 2, 3)).float(), rtol=1e-5, atol=1e-4)
    assert torch.equal(results[0], results[1])
