"""The tensor-core grad_input (csrc/ops/cuda/igemm_mma_dgrad.cuh) on the CPU
emulator: float16/bfloat16 against torch in float64 with the GPU tests'
bound, and float32 in TF32 (when torch allows TF32 for convs) within the
bound of 10-bit-mantissa operands, over stride phases (stride 1/2/3, stride
> kernel, dilation sharing a factor with the stride), asymmetric and 'same'
padding, partial M/N/K tiles, an output channel count that splits a BK step
between taps, groups, 1D, output_padding (a grad_input larger than the
minimal input, as conv_transpose takes it) and the empty batch; each of the
four tile shapes (mma_tiles.cuh's choice, per problem). Each case asserts
whether the tensor-core kernel launched, and which tile, so a case that
silently falls back to the SIMT kernel fails, and so does one the
tensor-core path must not take. The epilogue's two stores: 2D grad_input is
channels_last (16-byte vector stores along C), 1D grad_input is (N, C, L)
(element stores). An NCHW grad_output (PyTorch's default) takes the same
kernel from an NHWC copy: the same bits as the channels_last run.
"""
import math
import os
import sys
from collections import Counter
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from torch.nn import grad as nn_grad

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cuda_emulator  # noqa: E402
from test_cuda_emulator import (Case, assert_within, c1, case_tensors,  # noqa: E402
                                grad_input_size)
from test_cuda_mma import (T_NAMES, TILES, assert_every_tile_ran,  # noqa: E402
                           assert_tf32_result, rna_tf32, tf32)

pytestmark = pytest.mark.cuda_emulator

MMA_KERNEL = "igemm_mma_grad_input_kernel"


@pytest.fixture(scope="module")
def emu():
    return cuda_emulator.load()


def channels_contiguous(t):
    """The same values with channels innermost: channels_last 2D, (N, L, C) 1D."""
    if t.dim() == 4:
        return t.contiguous(memory_format=torch.channels_last)
    return t.transpose(1, 2).contiguous().transpose(1, 2)


# channels innermost, C/G and OC/G multiples of 8: the tensor-core path
# (GEMM per phase: M = positions, N = C/G, K = phase taps x OC/G); the
# 64x64 tile at the emulated 4 SMs (BK = 32 halves, 16 floats)
MMA_CASES = {
    # M = 286, N = 24, K = 144: partial tiles in m, n and k; OC < BK
    "edges": Case(2, 2, 24, 16, (13, 11), (3, 3), padding=(1, 1)),
    # OC = 40 (not a multiple of BK: steps straddle taps); stride 2, asymmetric padding
    "stride2": Case(2, 2, 16, 40, (15, 16), (3, 2), (2, 2), (1, 0)),
    # stride 3 > kernel 2 (tapless phases), stride (3, 4)
    "stride_gt_kernel": Case(2, 2, 8, 16, (11, 13), (2, 2), (3, 4), (1, 0)),
    "dilated": Case(2, 1, 8, 24, (14, 12), (3, 3), (1, 2), (2, 1), (2, 3)),
    # dilation sharing a factor with the stride: several taps per phase
    "dilation_gcd": Case(2, 2, 16, 8, (17, 15), (3, 3), (3, 2), (2, 1), (3, 4)),
    "asymmetric_padding": Case(2, 2, 8, 8, (9, 10), (3, 5), (1, 1), (0, 2)),
    "same_even": Case(2, 2, 8, 16, (9, 8), (4, 3), padding="same", dilation=(1, 2)),
    # C = 72: two n tiles; K = 576: the 3-stage ring wraps
    "deep": Case(2, 1, 72, 64, (6, 6), (3, 3), padding=(1, 1)),
    "one_by_one_strided": Case(2, 3, 16, 8, (9, 7), (1, 1), (2, 3)),
    "grouped": Case(2, 2, 16, 32, (9, 10), (3, 3), (2, 1), (1, 1), groups=2),
    # output_padding: an input larger than the conv minimum
    "extra_rows": Case(2, 2, 8, 16, (10, 9), (3, 3), (3, 2), (1, 1), extra=2),
    "extra_stride_gt_kernel": Case(2, 1, 16, 8, (9, 10), (2, 3), (3, 4), (0, 1), extra=2),
    "conv1d": c1(3, 16, 24, 40, 5, s=2, p=3, d=2),
    "conv1d_stride3": c1(2, 8, 16, 31, 2, s=3, p=1, extra=2),
    # per-problem tiles on one SM (mma_tiles.cuh): M = 81 x C = 72: 128x128
    # (BK = 16 halves / 8 floats; float stages the epilogue in two slices);
    # M = 81 x C = 16: 128x64; M = 36 x C = 72: 64x128
    "tile_128x128": Case(2, 1, 72, 16, (9, 9), (3, 3), padding=(1, 1), sm=1),
    "tile_128x64": Case(2, 1, 16, 16, (9, 9), (3, 3), padding=(1, 1), sm=1),
    "tile_64x128": Case(2, 1, 72, 16, (6, 6), (3, 3), padding=(1, 1), sm=1),
    # the largest phase sizes the tile: stride 2 phases of 5x5 and 5x4
    "tile_128x64_stride2": Case(2, 4, 16, 24, (10, 9), (3, 3), (2, 2), (1, 1), sm=1),
}
# the MmaPolicy (index into test_cuda_mma.TILES) each case must launch, 64x64
# unless listed: stride2 (4 phases of M = 128 x C = 16) and grouped (2 phases
# x 2 groups of M = 100 x C/G = 8) fill the 4 SMs with 128x64
TILE_OF = {"tile_128x128": 0, "tile_128x64": 1, "tile_64x128": 2, "tile_128x64_stride2": 1,
           "stride2": 1, "grouped": 1}
# float32 in TF32: strided, dilated, grouped, 1D, every tile
TF32_CASES = ["edges", "stride2", "stride_gt_kernel", "dilation_gcd", "grouped", "extra_rows",
              "conv1d", "conv1d_stride3", "tile_128x128", "tile_128x64", "tile_64x128"]

# what the SIMT kernel keeps (same results, no tensor-core launch)
FALLBACK_CASES = {
    "c_not_8": (Case(2, 2, 12, 16, (7, 7), (3, 3), padding=(1, 1)), True),
    "oc_not_8": (Case(2, 2, 8, 12, (7, 7), (3, 3), padding=(1, 1)), True),
    "grouped_icg_not_8": (Case(2, 2, 8, 16, (7, 7), (3, 3), padding=(1, 1), groups=2), True),
    # NCHW is copied to NHWC only for problems the kernel takes
    "c_not_8_nchw": (Case(2, 2, 12, 16, (7, 7), (3, 3), padding=(1, 1)), False),
    "oc_not_8_ncl": (c1(2, 8, 12, 20, 3, p=1), False),
}
# NCHW (N, C, L) grad_output: strided, grouped, 1D, a 128x128 tile
NCHW_CASES = ["edges", "stride2", "stride_gt_kernel", "grouped", "conv1d", "tile_128x128"]


def mma_launches(emu):
    return Counter({k: n for k, n in emu.launch_counts().items() if MMA_KERNEL in k})


def mma_blocks(emu):
    return sum(n for k, n in emu.block_counts().items() if MMA_KERNEL in k)


MMA_RAN = Counter()


def run_grad_input(emu, case, dtype, channels_last=True, tf32_check=False):
    """grad_input on the emulator vs torch in float64 (float32 with
    tf32_check: within the TF32 bound); the tensor-core launches it made,
    and the result."""
    c = case.conv
    x, w, _, params = case_tensors(case, dtype)
    out_shape = getattr(F, f"conv{c.dims}d")(x.double(), w.double(), None, *params).shape
    in_size = grad_input_size(case, x, out_shape, params)
    go = torch.randn(out_shape, generator=torch.Generator().manual_seed(1),
                     dtype=torch.float64).to(dtype)
    fn = getattr(nn_grad, f"conv{c.dims}d_input")
    ref = fn(in_size, w.double(), go.double(), *params)
    mag = fn(in_size, w.double().abs(), go.double().abs(), *params)
    emu.set_sm_count(case.sm)
    before = mma_launches(emu)
    try:
        gi = getattr(emu, f"conv{c.dims}d_grad_input")(
            channels_contiguous(go) if channels_last else go, w, in_size, *params)
    finally:
        emu.set_sm_count(4)
    k = c.OC // c.groups * math.prod(c.kernel)
    if tf32_check:
        ref_tf32 = fn(in_size, rna_tf32(w).double(), rna_tf32(go).double(), *params)
        assert_tf32_result(gi, ref, mag, ref_tf32, k, "grad_input")
    else:
        assert_within(gi, ref, mag, k, dtype, "grad_input")
    got = mma_launches(emu) - before
    MMA_RAN.update(got)
    return got, gi


def one_launch(got, dtype, name):
    """Exactly one tensor-core launch, of the case's tile for the dtype."""
    assert sum(got.values()) == 1, got
    launched = next(iter(got))
    assert f"MmaPolicy<{T_NAMES[dtype]}, {TILES[TILE_OF.get(name, 3)]}>" in launched, launched


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["f16", "bf16"])
@pytest.mark.parametrize("name", MMA_CASES)
def test_mma_grad_input(emu, name, dtype):
    got, _ = run_grad_input(emu, MMA_CASES[name], dtype)
    one_launch(got, dtype, name)


@pytest.mark.parametrize("name", TF32_CASES)
def test_mma_grad_input_tf32(emu, name):
    with tf32(True):
        got, _ = run_grad_input(emu, MMA_CASES[name], torch.float32, tf32_check=True)
    one_launch(got, torch.float32, name)


@pytest.mark.parametrize("name", ["edges", "stride2", "grouped", "conv1d"])
def test_mma_grad_input_tf32_off_runs_simt(emu, name):
    """TF32 off: the SIMT kernel, within the float32 bound (full precision)."""
    simt = Counter({k: n for k, n in emu.launch_counts().items() if "igemm_kernel<float" in k})
    with tf32(False):
        got, _ = run_grad_input(emu, MMA_CASES[name], torch.float32)
    assert sum(got.values()) == 0
    now = Counter({k: n for k, n in emu.launch_counts().items() if "igemm_kernel<float" in k})
    assert sum((now - simt).values()) == 1


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32])
def test_mma_grad_input_tile_changes_no_bit(emu, dtype):
    """The tile shape depends on the SM count; each element's sum does not:
    128x128 on one SM, 64x64 on 132, the same bits."""
    case = MMA_CASES["tile_128x128"]
    with tf32(True):
        one, a = run_grad_input(emu, case, dtype, tf32_check=dtype == torch.float32)
        many, b = run_grad_input(emu, replace(case, sm=132), dtype,
                                 tf32_check=dtype == torch.float32)
    assert TILES[0] in next(iter(one)) and TILES[3] in next(iter(many))
    assert torch.equal(a, b)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32],
                         ids=["f16", "bf16", "tf32"])
@pytest.mark.parametrize("name", NCHW_CASES)
def test_mma_grad_input_nchw_copies_to_nhwc(emu, name, dtype):
    """NCHW grad_output: copied to NHWC, the tensor-core kernel and tile of
    the channels_last run, and its bits exactly (the copy is exact)."""
    case, on = MMA_CASES[name], dtype == torch.float32
    with tf32(on):
        got_cl, want = run_grad_input(emu, case, dtype, tf32_check=on)
        got, gi = run_grad_input(emu, case, dtype, channels_last=False, tf32_check=on)
    one_launch(got_cl, dtype, name)
    one_launch(got, dtype, name)
    assert torch.equal(gi, want)


@pytest.mark.parametrize("name", FALLBACK_CASES)
def test_mma_grad_input_fallback(emu, name):
    case, channels_last = FALLBACK_CASES[name]
    assert sum(run_grad_input(emu, case, torch.float16, channels_last)[0].values()) == 0


def test_mma_grad_input_not_for_double(emu):
    assert sum(run_grad_input(emu, MMA_CASES["edges"], torch.float64)[0].values()) == 0


def test_mma_grad_input_empty_batch(emu):
    """N = 0: an empty result, no launch."""
    got, _ = run_grad_input(emu, Case(2, 0, 8, 16, (7, 7), (3, 3), padding=(1, 1)),
                            torch.float16)
    assert sum(got.values()) == 0


@pytest.mark.parametrize("case", [
    c1(1, 8, 8, 3000, 3, s=1000, p=1),
    Case(2, 1, 8, 8, (200, 300), (2, 3), (100, 150), (0, 1), dilation=(1, 2)),
], ids=["conv1d", "conv2d"])
def test_mma_grad_input_grid_does_not_grow_with_the_stride(emu, case):
    """Only phases a tap reaches get blocks (at most KH * KW of them, one
    64 x 64 tile each here); the tapless ones are zero-filled."""
    before = mma_blocks(emu)
    got, _ = run_grad_input(emu, case, torch.bfloat16)
    assert sum(got.values()) == 1
    assert mma_blocks(emu) - before <= math.prod(case.conv.kernel)


def test_mma_every_grad_input_tile_ran(emu):
    assert_every_tile_ran(MMA_RAN)
