"""Tensor-core built-ins (csrc/ops/cuda/mma.cuh) on the CPU emulator.

The emulator implements mma.sync, ldmatrix and cp.async by the PTX ISA's
fragment layouts; these tests check that emulation on its own, against a
plain matrix product and plain copies, with the layouts written out here a
second time from the PTX tables, element by element as the ISA states them
("Matrix Fragments for mma.m16n8k16 with floating point type", "Matrix
Fragments for mma.m16n8k8", "Warp-level matrix load instruction: ldmatrix").
Each check also gets a defect it must catch: a wrong fragment index, a
skipped cp.async wait, a misaligned row address.
"""
import math
import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cuda_emulator  # noqa: E402

pytestmark = pytest.mark.cuda_emulator

F32_UNIT = 2.0 ** -24


@pytest.fixture(scope="module")
def emu():
    return cuda_emulator.load()


def bits16(x):
    """16-bit patterns of a float16/bfloat16 tensor as int64."""
    return x.view(torch.int16).long() & 0xFFFF


def pack(lo, hi):
    """Two 16-bit patterns in one 32-bit register (as a signed int32)."""
    return ((hi << 16) | lo).to(torch.int64).apply_(lambda v: v - (1 << 32) if v >= 1 << 31 else v
                                                    ).to(torch.int32)


# --- the PTX tables, per element (g = groupID, t = threadID_in_group) -------

def a16_pos(lane, i):  # a_i, i in 0..7, of m16n8k16 A
    g, t = lane // 4, lane % 4
    row = g if i < 2 or 4 <= i < 6 else g + 8
    col = t * 2 + (i & 1) + (8 if i >= 4 else 0)
    return row, col


def b16_pos(lane, i):  # b_i, i in 0..3, of m16n8k16 B
    g, t = lane // 4, lane % 4
    return t * 2 + (i & 1) + (8 if i >= 2 else 0), g


def c_pos(lane, i):  # c_i, i in 0..3, of C and D (both shapes)
    g, t = lane // 4, lane % 4
    return g if i < 2 else g + 8, t * 2 + (i & 1)


def a_tf32_pos(lane, i):  # a_i, i in 0..3, of m16n8k8 .tf32 A
    g, t = lane // 4, lane % 4
    return g if i in (0, 2) else g + 8, t if i < 2 else t + 4


def b_tf32_pos(lane, i):  # b_i, i in 0..1, of m16n8k8 .tf32 B
    g, t = lane // 4, lane % 4
    return t if i == 0 else t + 4, g


def half_fragments(M, pos, regs):
    """32 x regs registers, element pairs (2r, 2r+1) packed low/high."""
    b = bits16(M)
    lo = torch.tensor([[b[pos(l, 2 * r)] for r in range(regs)] for l in range(32)])
    hi = torch.tensor([[b[pos(l, 2 * r + 1)] for r in range(regs)] for l in range(32)])
    return pack(lo, hi)


def f32_fragments(M, pos, regs):
    return torch.tensor([[M[pos(l, r)].item() for r in range(regs)] for l in range(32)],
                        dtype=torch.float32).view(torch.int32)


def c_fragments(C):
    return torch.tensor([[C[c_pos(l, i)].item() for i in range(4)] for l in range(32)],
                        dtype=torch.float32)


def from_d(d):
    D = torch.empty(16, 8, dtype=torch.float32)
    for l in range(32):
        for i in range(4):
            D[c_pos(l, i)] = d[l, i]
    return D


def assert_mma_close(D, A, B, C, what):
    ref = A.double() @ B.double() + C.double()
    mag = A.double().abs() @ B.double().abs() + C.double().abs()
    tol = (A.shape[1] + 2) * F32_UNIT * mag + 1e-30
    err = (D.double() - ref).abs()
    assert (err <= tol).all(), f"{what}: max error {err.max():.3g}, {int((err > tol).sum())} off"


def mma_off(D, A, B, C):
    try:
        assert_mma_close(D, A, B, C, "")
    except AssertionError:
        return True
    return False


def rna_tf32(x):
    """cvt.rna.tf32.f32 written from its definition: nearest, ties away."""
    u = x.view(torch.int32).long() & 0xFFFFFFFF
    r = ((u + 0x1000) & ~0x1FFF) & 0xFFFFFFFF
    return r.apply_(lambda v: v - (1 << 32) if v >= 1 << 31 else v).to(torch.int32).view(
        torch.float32)


def trunc_tf32(x):
    return (x.view(torch.int32) & ~0x1FFF).view(torch.float32)


@pytest.mark.parametrize("dtype,name", [(torch.float16, "f16"), (torch.bfloat16, "bf16")])
def test_mma_m16n8k16_matches_matmul(emu, dtype, name):
    g = torch.Generator().manual_seed(0)
    A = torch.randn(16, 16, generator=g).to(dtype)
    B = torch.randn(16, 8, generator=g).to(dtype)
    C = torch.randn(16, 8, generator=g)
    d = emu.mma_fragments(half_fragments(A, a16_pos, 4), half_fragments(B, b16_pos, 2),
                          c_fragments(C), name, False)
    assert_mma_close(from_d(d), A, B, C, name)


@pytest.mark.parametrize("operand", ["a", "b"])
def test_mma_wrong_fragment_index_is_caught(emu, operand):
    g = torch.Generator().manual_seed(1)
    A = torch.randn(16, 16, generator=g).to(torch.bfloat16)
    B = torch.randn(16, 8, generator=g).to(torch.bfloat16)
    C = torch.zeros(16, 8)
    fa, fb = half_fragments(A, a16_pos, 4), half_fragments(B, b16_pos, 2)
    if operand == "a":
        fa = fa[:, [0, 2, 1, 3]].contiguous()  # a1 <-> a2: rows 8-15 and k 8-15 swapped
    else:
        fb = fb[:, [1, 0]].contiguous()
    d = emu.mma_fragments(fa, fb, c_fragments(C), "bf16", False)
    assert mma_off(from_d(d), A, B, C)


def test_mma_tf32_rounds_operands(emu):
    g = torch.Generator().manual_seed(2)
    A = torch.randn(16, 8, generator=g)
    B = torch.randn(8, 8, generator=g)
    C = torch.randn(16, 8, generator=g)
    fa, fb, fc = f32_fragments(A, a_tf32_pos, 4), f32_fragments(B, b_tf32_pos, 2), c_fragments(C)
    # unconverted operands: the tensor core reads only their top 19 bits
    assert_mma_close(from_d(emu.mma_fragments(fa, fb, fc, "tf32", False)),
                     trunc_tf32(A), trunc_tf32(B), C, "tf32 truncated")
    # to_tf32 (cvt.rna) first: the product of the rounded operands
    D = from_d(emu.mma_fragments(fa, fb, fc, "tf32", True))
    assert_mma_close(D, rna_tf32(A), rna_tf32(B), C, "tf32 rounded")
    assert not torch.equal(rna_tf32(A), trunc_tf32(A))
    assert mma_off(D, A, B, C), "TF32 must not give the full float32 product"


@pytest.mark.parametrize("n", [1, 2, 4])
@pytest.mark.parametrize("trans", [False, True])
@pytest.mark.parametrize("pad", [0, 1])
def test_ldmatrix_layout(emu, n, trans, pad):
    mats = torch.arange(n * 64, dtype=torch.float32).reshape(n, 8, 8).half()
    out = emu.ldmatrix(mats, trans, pad, 0)
    b = bits16(mats)
    for l in range(32):
        for j in range(n):
            if trans:
                lo, hi = b[j, 2 * (l % 4), l // 4], b[j, 2 * (l % 4) + 1, l // 4]
            else:
                lo, hi = b[j, l // 4, 2 * (l % 4)], b[j, l // 4, 2 * (l % 4) + 1]
            v = int(out[l, j]) & 0xFFFFFFFF
            assert (v & 0xFFFF, v >> 16) == (int(lo), int(hi)), (l, j)


def test_ldmatrix_misaligned_row_is_caught(emu):
    with pytest.raises(RuntimeError, match="misaligned ldmatrix row address"):
        emu.ldmatrix(torch.zeros(2, 8, 8, dtype=torch.half), False, 0, 1)


@pytest.mark.parametrize("pending", [0, 1, 3])
def test_cp_async_groups_and_zero_fill(emu, pending):
    g = torch.Generator().manual_seed(3)
    src = torch.randn(512, generator=g)
    ok = (torch.arange(128) % 3 != 0).int()
    read = 4 - pending
    dst = emu.cp_async(src, ok, pending, read)
    want = (src.view(4, 32, 4) * ok.view(4, 32, 1)).reshape(512)
    want[read * 128:] = 0
    assert torch.equal(dst, want)


def test_cp_async_read_before_wait_is_caught(emu):
    src = torch.ones(512)
    ok = torch.ones(128, dtype=torch.int32)
    with pytest.raises(RuntimeError, match="uninitialised shared memory 'buf'"):
        emu.cp_async(src, ok, 1, 4)  # the 4th group is still in flight


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("b_kmajor", [False, True])
@pytest.mark.parametrize("K", [16, 48, 80])
def test_gemm_tile_pipeline(emu, dtype, b_kmajor, K):
    g = torch.Generator().manual_seed(K)
    A = torch.randn(16, K, generator=g).to(dtype)
    B = torch.randn(K, 8, generator=g).to(dtype)
    D = emu.gemm_tile(A, B if b_kmajor else B.t().contiguous(), b_kmajor, False, False)
    assert_mma_close(D, A, B, torch.zeros(16, 8), f"gemm_tile K={K}")


def test_gemm_tile_swapped_fragment_is_caught(emu):
    g = torch.Generator().manual_seed(4)
    A = torch.randn(16, 32, generator=g).half()
    B = torch.randn(32, 8, generator=g).half()
    D = emu.gemm_tile(A, B, True, False, True)
    assert mma_off(D, A, B, torch.zeros(16, 8))


def test_gemm_tile_skipped_wait_is_caught(emu):
    A = torch.ones(16, 32).half()
    B = torch.ones(32, 8).half()
    with pytest.raises(RuntimeError, match="uninitialised shared memory 'a_s'"):
        emu.gemm_tile(A, B, True, True, False)


# --- TF32 follows torch's setting for convolutions ---------------------------

TF32_SCRIPT = r"""
import sys, torch
sys.path.insert(0, {tests!r})
import cuda_emulator
emu = cuda_emulator.load()
c = torch.backends.cudnn
out = [emu.conv_tf32_allowed()]                       # default
c.allow_tf32 = False; out.append(emu.conv_tf32_allowed())  # legacy switch off
c.allow_tf32 = True; out.append(emu.conv_tf32_allowed())
if hasattr(c, "conv"):                                # torch >= 2.9 per-op precision
    c.conv.fp32_precision = "ieee"; out.append(emu.conv_tf32_allowed())
    c.conv.fp32_precision = "tf32"; out.append(emu.conv_tf32_allowed())
print(out)
"""


def test_tf32_follows_torch_conv_setting(emu):
    """In a child process: the global flags must not leak into other tests."""
    import subprocess
    tests = os.path.dirname(os.path.abspath(__file__))
    r = subprocess.run([sys.executable, "-c", TF32_SCRIPT.format(tests=tests)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    got = eval(r.stdout.strip().splitlines()[-1])
    want = [True, False, True] + ([False, True] if hasattr(torch.backends.cudnn, "conv") else [])
    assert got == want  # got[0]: on by default, as F.conv2d (cuDNN) is out of the box


# --- the tensor-core forward kernel (igemm_mma.cuh) through the emulator ------

from test_cuda_emulator import Case, assert_within, lay_out  # noqa: E402

MMA_KERNEL = "igemm_mma_forward_kernel"

# channels_last, groups 1, C and OC multiples of 8: the tensor-core path
MMA_CASES = {
    # M = 286 and K = 72: partial tiles in m and k
    "edges": Case(2, 2, 8, 24, (13, 11), (3, 3), padding=(1, 1), layout="channels_last"),
    # OC = 72: two n tiles; stride, dilation, asymmetric padding
    "wide": Case(2, 1, 16, 72, (9, 10), (2, 3), (2, 1), (1, 0), (1, 2), layout="channels_last"),
    # K = 576: the 3-stage ring wraps six times; no bias
    "deep": Case(2, 1, 64, 16, (6, 6), (3, 3), padding=(1, 1), layout="channels_last",
                 bias=False),
    "one_by_one": Case(2, 3, 32, 8, (5, 7), (1, 1), (2, 2), layout="channels_last"),
}
# what the SIMT kernels keep (same results, no tensor-core launch)
FALLBACK_CASES = {
    "c_not_8": Case(2, 2, 12, 16, (7, 7), (3, 3), padding=(1, 1), layout="channels_last"),
    "oc_not_8": Case(2, 2, 8, 12, (7, 7), (3, 3), padding=(1, 1), layout="channels_last"),
    "nchw": Case(2, 2, 8, 16, (7, 7), (3, 3), padding=(1, 1)),
    "grouped": Case(2, 2, 16, 16, (7, 7), (3, 3), padding=(1, 1), groups=2,
                    layout="channels_last"),
}


def mma_launches(emu):
    return sum(n for k, n in emu.launch_counts().items() if MMA_KERNEL in k)


def run_forward(emu, case, dtype):
    """Forward on the emulator vs torch in float64; how many tensor-core launches."""
    c = case.conv
    x, w, b = c.make(dtype)
    params = list(c.op_params())
    x64, w64 = x.double(), w.double()
    b64 = None if b is None else b.double()
    ref = torch.nn.functional.conv2d(x64, w64, b64, *params)
    mag = torch.nn.functional.conv2d(x64.abs(), w64.abs(), None if b is None else b64.abs(),
                                     *params)
    before = mma_launches(emu)
    out = emu.conv2d(lay_out(x, case.layout), lay_out(w, case.layout), b, *params)
    assert_within(out, ref, mag, c.C // c.groups * math.prod(c.kernel), dtype, "forward")
    return mma_launches(emu) - before


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("name", MMA_CASES)
def test_mma_forward(emu, name, dtype):
    assert run_forward(emu, MMA_CASES[name], dtype) == 1


@pytest.mark.parametrize("name", FALLBACK_CASES)
def test_mma_forward_fallback(emu, name):
    assert run_forward(emu, FALLBACK_CASES[name], torch.float16) == 0


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_mma_forward_not_for_float(emu, dtype):
    assert run_forward(emu, MMA_CASES["edges"], dtype) == 0
