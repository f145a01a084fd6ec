"""The tensor-core weight gradient (csrc/ops/cuda/igemm_mma_wgrad.cuh) and
the GPU-model independence of every split reduction, on the CPU emulator.

grad_weight for channels_last half types runs on mma.sync with k-major
shared tiles (ldmatrix .trans) and a deterministic split of the reduction
over output positions. Results are compared with torch in float64 under the
emulated suite's bounds; each case asserts which kernel ran. The split
counts depend only on the problem's sizes, never on the device's SM count,
so results must be bitwise equal on emulated devices of different sizes.
"""
import math
import os
import sys

import pytest
import torch
from torch.nn import grad as nn_grad

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cuda_emulator  # noqa: E402
from test_cuda_emulator import Case, assert_within, c1  # noqa: E402

pytestmark = pytest.mark.cuda_emulator

MMA_KERNEL = "igemm_mma_wgrad_kernel"
SIMT_KERNEL = "igemm_kernel"


@pytest.fixture(scope="module")
def emu():
    return cuda_emulator.load()


def channels_last(t):
    """The same values with the channel dim fastest (1D and 2D)."""
    return t.movedim(1, -1).contiguous().movedim(-1, 1)


# channels_last, groups 1, C and OC multiples of 8: the tensor-core path.
# GEMM sides: M = OC, N = KH*KW*C (tile 64 x 64), reduction Q = N*OH*OW (32 a step).
MMA_CASES = {
    # Q = 286, N = 72, M = 24: partial tiles on every side
    "edges": Case(2, 2, 8, 24, (13, 11), (3, 3), padding=(1, 1)),
    # M = 72: two m tiles; stride, dilation, asymmetric padding
    "wide": Case(2, 1, 16, 72, (9, 10), (2, 3), (2, 1), (1, 0), (1, 2), bias=False),
    # Q = 1152: split in 4 (8 steps each), the 3-stage ring wraps in every split
    "long_q": Case(2, 2, 8, 8, (24, 24), (3, 3), padding=(1, 1)),
    # stride larger than the kernel: input rows no tap reads
    "one_by_one": Case(2, 3, 32, 8, (5, 7), (1, 1), (2, 2)),
    "conv1d": c1(3, 16, 8, 50, 3, s=2, p=1, d=2),
}
# what the SIMT kernels keep
FALLBACK_CASES = {
    "c_not_8": Case(2, 2, 12, 16, (7, 7), (3, 3), padding=(1, 1)),
    "oc_not_8": Case(2, 2, 8, 12, (7, 7), (3, 3), padding=(1, 1)),
    "grouped": Case(2, 2, 16, 16, (7, 7), (3, 3), padding=(1, 1), groups=2),
}


def launches(emu, name):
    return sum(n for k, n in emu.launch_counts().items() if f"::{name}<" in k)


def grad_weight(emu, case, dtype, layout=channels_last):
    """grad_weight on the emulator, checked against torch in float64; returns
    it with the number of tensor-core and SIMT GEMM launches it took."""
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
    before = launches(emu, MMA_KERNEL), launches(emu, SIMT_KERNEL)
    gw = getattr(emu, f"conv{c.dims}d_grad_weight")(layout(go), layout(x), list(w.shape),
                                                    *params)
    positions = out_shape[0] * math.prod(out_shape[2:])
    assert_within(gw, ref, mag, positions, dtype, "grad_weight")
    return gw, launches(emu, MMA_KERNEL) - before[0], launches(emu, SIMT_KERNEL) - before[1]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["f16", "bf16"])
@pytest.mark.parametrize("name", MMA_CASES)
def test_mma_grad_weight(emu, name, dtype):
    _, mma, simt = grad_weight(emu, MMA_CASES[name], dtype)
    assert (mma, simt) == (1, 0)


def test_mma_grad_weight_splits(emu):
    """long_q's reduction is split (several blocks per output tile), the
    others' is not; the grid is splits x tiles whatever the SM count."""
    counts = {}
    for sm in (1, 132):
        emu.set_sm_count(sm)
        try:
            for name in ("edges", "long_q"):
                before = sum(n for k, n in emu.block_counts().items() if MMA_KERNEL in k)
                grad_weight(emu, MMA_CASES[name], torch.float16)
                counts[sm, name] = sum(
                    n for k, n in emu.block_counts().items() if MMA_KERNEL in k) - before
        finally:
            emu.set_sm_count(4)
    assert counts[1, "edges"] == counts[132, "edges"] == 2        # 1 m tile x 2 n tiles
    assert counts[1, "long_q"] == counts[132, "long_q"] == 4 * 2  # 4 splits x 2 n tiles


@pytest.mark.parametrize("name", FALLBACK_CASES)
def test_mma_grad_weight_fallback(emu, name):
    _, mma, simt = grad_weight(emu, FALLBACK_CASES[name], torch.float16)
    assert mma == 0 and simt == 1


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_mma_grad_weight_not_for_float(emu, dtype):
    _, mma, simt = grad_weight(emu, MMA_CASES["edges"], dtype)
    assert mma == 0 and simt == 1


def test_mma_grad_weight_not_for_nchw(emu):
    _, mma, simt = grad_weight(emu, MMA_CASES["edges"], torch.float16, layout=lambda t: t)
    assert mma == 0 and simt == 1


def test_mma_grad_weight_empty_batch(emu):
    case = Case(2, 0, 8, 16, (7, 7), (3, 3), padding=(1, 1))
    gw, mma, _ = grad_weight(emu, case, torch.float16)
    assert mma == 0 and torch.equal(gw, torch.zeros_like(gw))


# --- split counts depend on the problem only ----------------------------------

SPLIT_CASES = {
    "simt_split": (Case(2, 4, 3, 4, (40, 40), (3, 3), padding=(1, 1)), torch.float32, None),
    "simt_split_big": (Case(2, 1, 16, 72, (9, 9), (3, 3), padding=(1, 1)), torch.float32, None),
    "mma": (MMA_CASES["long_q"], torch.float16, channels_last),
}


@pytest.mark.parametrize("name", SPLIT_CASES)
def test_grad_weight_bitwise_equal_across_sm_counts(emu, name):
    case, dtype, layout = SPLIT_CASES[name]
    results = []
    for sm in (1, 132):
        emu.set_sm_count(sm)
        try:
            results.append(grad_weight(emu, case, dtype, layout or (lambda t: t))[0])
        finally:
            emu.set_sm_count(4)
    assert torch.equal(results[0], results[1])


def test_grad_bias_bitwise_equal_across_sm_counts(emu):
    go = torch.randn(8, 3, 40, 40, generator=torch.Generator().manual_seed(2))
    results = []
    for sm in (1, 132):
        emu.set_sm_count(sm)
        try:
            results.append(emu.conv_grad_bias(go))
        finally:
            emu.set_sm_count(4)
    assert torch.allclose(results[0], go.double().sum((0, 2, 3)).float(), rtol=1e-5, atol=1e-4)
    assert torch.equal(results[0], results[1])
