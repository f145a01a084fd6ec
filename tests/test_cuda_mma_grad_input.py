"""The tensor-core grad_input (csrc/ops/cuda/igemm_mma_dgrad.cuh) on the CPU
emulator: float16/bfloat16 against torch in float64 with the GPU tests'
bound, over stride phases (stride 1/2/3, stride > kernel, dilation sharing a
factor with the stride), asymmetric and 'same' padding, partial M/N/K tiles,
an output channel count that splits a BK step between taps, groups, 1D,
output_padding (a grad_input larger than the minimal input, as
conv_transpose takes it) and the empty batch. Each case asserts whether the
tensor-core kernel launched, so a case that silently falls back to the SIMT
kernel fails, and so does one the tensor-core path must not take.
"""
import math
import os
import sys

import pytest
import torch
import torch.nn.functional as F
from torch.nn import grad as nn_grad

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cuda_emulator  # noqa: E402
from test_cuda_emulator import (Case, assert_within, c1, case_tensors,  # noqa: E402
                                grad_input_size)

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
# (GEMM per phase: M = positions, N = C/G, K = phase taps x OC/G; BM = BN = 64,
# BK = 32)
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
}

# what the SIMT kernel keeps (same results, no tensor-core launch)
FALLBACK_CASES = {
    "c_not_8": (Case(2, 2, 12, 16, (7, 7), (3, 3), padding=(1, 1)), True),
    "oc_not_8": (Case(2, 2, 8, 12, (7, 7), (3, 3), padding=(1, 1)), True),
    "grouped_icg_not_8": (Case(2, 2, 8, 16, (7, 7), (3, 3), padding=(1, 1), groups=2), True),
    "nchw": (MMA_CASES["edges"], False),
    "conv1d_ncl": (MMA_CASES["conv1d"], False),
}


def mma_launches(emu):
    return sum(n for k, n in emu.launch_counts().items() if MMA_KERNEL in k)


def mma_blocks(emu):
    return sum(n for k, n in emu.block_counts().items() if MMA_KERNEL in k)


def run_grad_input(emu, case, dtype, channels_last=True):
    """grad_input on the emulator vs torch in float64; tensor-core launches."""
    c = case.conv
    x, w, _, params = case_tensors(case, dtype)
    out_shape = getattr(F, f"conv{c.dims}d")(x.double(), w.double(), None, *params).shape
    in_size = grad_input_size(case, x, out_shape, params)
    go = torch.randn(out_shape, generator=torch.Generator().manual_seed(1),
                     dtype=torch.float64).to(dtype)
    fn = getattr(nn_grad, f"conv{c.dims}d_input")
    ref = fn(in_size, w.double(), go.double(), *params)
    mag = fn(in_size, w.double().abs(), go.double().abs(), *params)
    before = mma_launches(emu)
    gi = getattr(emu, f"conv{c.dims}d_grad_input")(
        channels_contiguous(go) if channels_last else go, w, in_size, *params)
    assert_within(gi, ref, mag, c.OC // c.groups * math.prod(c.kernel), dtype, "grad_input")
    return mma_launches(emu) - before


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["f16", "bf16"])
@pytest.mark.parametrize("name", MMA_CASES)
def test_mma_grad_input(emu, name, dtype):
    assert run_grad_input(emu, MMA_CASES[name], dtype) == 1


@pytest.mark.parametrize("name", FALLBACK_CASES)
def test_mma_grad_input_fallback(emu, name):
    case, channels_last = FALLBACK_CASES[name]
    assert run_grad_input(emu, case, torch.float16, channels_last) == 0


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_mma_grad_input_not_for_float(emu, dtype):
    assert run_grad_input(emu, MMA_CASES["edges"], dtype) == 0


def test_mma_grad_input_empty_batch(emu):
    """N = 0: an empty result, no launch."""
    assert run_grad_input(emu, Case(2, 0, 8, 16, (7, 7), (3, 3), padding=(1, 1)),
                          torch.float16) == 0


@pytest.mark.parametrize("case", [
    c1(1, 8, 8, 3000, 3, s=1000, p=1),
    Case(2, 1, 8, 8, (200, 300), (2, 3), (100, 150), (0, 1), dilation=(1, 2)),
], ids=["conv1d", "conv2d"])
def test_mma_grad_input_grid_does_not_grow_with_the_stride(emu, case):
    """Only phases a tap reaches get blocks (at most KH * KW of them, one
    64 x 64 tile each here); the tapless ones are zero-filled."""
    before = mma_blocks(emu)
    assert run_grad_input(emu, case, torch.bfloat16) == 1
    assert mma_blocks(emu) - before <= math.prod(case.conv.kernel)
