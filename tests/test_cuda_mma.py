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
from collections import Counter
from dataclasses import replace

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

from contextlib import contextmanager  # noqa: E402

from test_cuda_emulator import Case, assert_within, bound, c1, lay_out  # noqa: E402

MMA_KERNEL = "igemm_mma_forward_kernel"
TILES = ["128, 128, 2, 4, 3, 2", "128, 64, 2, 2, 3, 4", "64, 128, 2, 2, 3, 4",
         "64, 64, 2, 2, 3, 4"]  # MmaPolicy<T, ...> of each forward tile
T_NAMES = {torch.float16: "c10::Half", torch.bfloat16: "c10::BFloat16", torch.float32: "float"}

# The tensor-core path (channels per group multiples of 8 halves / 4 floats);
# `tile`: the MmaPolicy the host must pick at the case's emulated SM count.
MMA_CASES = {
    # M = 286 and K = 72: partial tiles in m and k
    "edges": (Case(2, 2, 8, 24, (13, 11), (3, 3), padding=(1, 1), layout="channels_last"), 3),
    # OC = 72: two n tiles; stride, dilation, asymmetric padding
    "wide": (Case(2, 1, 16, 72, (9, 10), (2, 3), (2, 1), (1, 0), (1, 2), layout="channels_last",
                  sm=8), 3),
    # K = 576: the 3-stage ring wraps six times; no bias
    "deep": (Case(2, 1, 64, 16, (6, 6), (3, 3), padding=(1, 1), layout="channels_last",
                  bias=False), 3),
    "one_by_one": (Case(2, 3, 32, 8, (5, 7), (1, 1), (2, 2), layout="channels_last"), 3),
    # per-problem tiles: M = 81 x OC = 72 on one SM: 128x128 (BK = 16 halves,
    # 8 warps); M = 81 x OC = 16: 128x64; M = 36 x OC = 72: 64x128
    "tile_128x128": (Case(2, 1, 8, 72, (9, 9), (3, 3), padding=(1, 1), layout="channels_last",
                          sm=1), 0),
    "tile_128x64": (Case(2, 1, 16, 16, (9, 9), (3, 3), padding=(1, 1), layout="channels_last",
                         sm=1), 1),
    "tile_64x128": (Case(2, 1, 8, 72, (6, 6), (3, 3), padding=(1, 1), layout="channels_last",
                         sm=1), 2),
    # other layouts: copied to NHWC around the kernel, out in the input's layout
    "nchw": (Case(2, 2, 8, 16, (7, 7), (3, 3), padding=(1, 1)), 3),
    "strided": (Case(2, 2, 8, 16, (7, 9), (3, 2), (2, 1), (1, 1), layout="strided"), 3),
    # groups: per-group blocks, weight rows and input channels offset per group
    "grouped": (Case(2, 2, 16, 16, (7, 7), (3, 3), padding=(1, 1), groups=2,
                     layout="channels_last"), 3),
    "grouped_nchw_128": (Case(2, 1, 32, 144, (9, 9), (3, 3), (1, 1), (1, 1), groups=2,
                              sm=1), 0),
    # 1D: H = KH = 1
    "conv1d": (c1(3, 8, 16, 40, 5, s=2, p=3, d=2), 3),
    "conv1d_grouped": (c1(2, 16, 32, 33, 3, p=1, g=2), 3),
}
# split-K: few output tiles, K >= 1024: 2 splits of 576 (3x3, 128 channels),
# float32 partials, then split_reduce adds them with the bias in order
SPLIT_CASES = {
    "split_k": Case(2, 1, 128, 8, (4, 4), (3, 3), padding=(1, 1), layout="channels_last"),
    "split_k_grouped_nchw": Case(2, 1, 256, 16, (3, 4), (3, 3), padding=(1, 1), groups=2),
    "split_k_conv1d": c1(1, 256, 8, 6, 5, p=2),
}
# what the SIMT kernels keep (same results, no tensor-core launch)
FALLBACK_CASES = {
    "c_not_8": Case(2, 2, 12, 16, (7, 7), (3, 3), padding=(1, 1), layout="channels_last"),
    "oc_not_8": Case(2, 2, 8, 12, (7, 7), (3, 3), padding=(1, 1), layout="channels_last"),
    "icg_not_8": Case(2, 2, 24, 16, (7, 7), (3, 3), padding=(1, 1), groups=2),
}


def launches(emu, kernel=MMA_KERNEL):
    return Counter({k: n for k, n in emu.launch_counts().items() if kernel in k})


def conv_ref(case, dtype):
    c = case.conv
    x, w, b = c.make(dtype)
    params = list(c.op_params())
    conv = getattr(torch.nn.functional, f"conv{c.dims}d")
    x64, w64 = x.double(), w.double()
    b64 = None if b is None else b.double()
    ref = conv(x64, w64, b64, *params)
    mag = conv(x64.abs(), w64.abs(), None if b is None else b64.abs(), *params)
    return x, w, b, params, ref, mag


def run_forward(emu, case, dtype, tf32_check=False):
    """Forward on the emulator vs torch in float64 (for float32 with TF32
    on: within the TF32 bound, and off the float32 one); the tensor-core
    launches it made, and the output."""
    c = case.conv
    x, w, b, params, ref, mag = conv_ref(case, dtype)
    emu.set_sm_count(case.sm)
    before = launches(emu)
    try:
        xl = lay_out(x, case.layout)
        out = getattr(emu, f"conv{c.dims}d")(xl, lay_out(w, case.layout), b, *params)
    finally:
        emu.set_sm_count(4)
    k = c.C // c.groups * math.prod(c.kernel)
    if tf32_check:
        assert_tf32(out, case, ref, mag, k)
    else:
        assert_within(out, ref, mag, k, dtype, "forward")
    # layout-preserving like F.conv2d: NCHW in, NCHW-contiguous out
    if case.layout != "channels_last" or c.dims == 1:
        assert out.is_contiguous()
    else:
        assert out.is_contiguous(memory_format=torch.channels_last)
    return launches(emu) - before, out


def assert_tf32_result(out, ref, mag, ref_tf32, k, what):
    """TF32 ran: within the bound of 10-bit-mantissa operands (cvt.rna: each
    within 2^-11 relative, so each product within about 2^-10 |a||b|) plus
    float32 accumulation of the exact result `ref` (sums of k products, |.|
    sums `mag`); within the float32 bound of `ref_tf32`, the same sums of the
    rounded operands' products; and nearer to that than to the exact result
    (full float32 products would be the other way round)."""
    tol = bound(ref, mag, k, torch.float32) + 2 * 2.0 ** -11 * mag
    err = (out.double() - ref).abs()
    assert (err <= tol).all(), f"{what} TF32: max error {err.max():.3g}"
    assert_within(out, ref_tf32, mag, k, torch.float32, f"{what} TF32 vs rounded operands")
    assert (out.double() - ref_tf32).abs().sum() < err.sum(), f"{what}: full float32 products"


def assert_tf32(out, case, ref, mag, k):
    x, w, b, params, _, _ = conv_ref(case, torch.float32)
    conv = getattr(torch.nn.functional, f"conv{case.conv.dims}d")
    ref_tf32 = conv(rna_tf32(x).double(), rna_tf32(w).double(),
                    None if b is None else b.double(), *params)
    assert_tf32_result(out, ref, mag, ref_tf32, k, "forward")


def one_launch(got, dtype, tile):
    """Exactly one tensor-core launch, of the given tile for the dtype."""
    assert sum(got.values()) == 1, got
    name = next(iter(got))
    assert f"MmaPolicy<{T_NAMES[dtype]}, {TILES[tile]}>" in name, name
    return name


MMA_RAN = Counter()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("name", MMA_CASES)
def test_mma_forward(emu, name, dtype):
    case, tile = MMA_CASES[name]
    got, _ = run_forward(emu, case, dtype)
    MMA_RAN[one_launch(got, dtype, tile)] += 1


@contextmanager
def tf32(flag):
    """torch's switch for TF32 in convs, restored after."""
    old = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = flag
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32 = old


@pytest.mark.parametrize("name", ["edges", "wide", "tile_128x128", "tile_128x64", "tile_64x128",
                                  "nchw", "grouped", "conv1d"])
def test_mma_forward_tf32(emu, name):
    case, tile = MMA_CASES[name]
    with tf32(True):
        got, _ = run_forward(emu, case, torch.float32, tf32_check=True)
    MMA_RAN[one_launch(got, torch.float32, tile)] += 1


@pytest.mark.parametrize("name", ["edges", "nchw", "grouped"])
def test_mma_forward_tf32_off_runs_simt(emu, name):
    case, _ = MMA_CASES[name]
    before = launches(emu, "igemm_kernel<float")
    with tf32(False):
        got, _ = run_forward(emu, case, torch.float32)
    assert sum(got.values()) == 0
    assert sum((launches(emu, "igemm_kernel<float") - before).values()) == 1


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
@pytest.mark.parametrize("name", SPLIT_CASES)
def test_mma_forward_split_k(emu, name, dtype):
    reduces = launches(emu, "split_reduce_kernel")
    with tf32(True):
        got, out = run_forward(emu, SPLIT_CASES[name], dtype, tf32_check=dtype == torch.float32)
    MMA_RAN[one_launch(got, dtype, 3)] += 1
    assert emu.block_counts()[next(iter(got))] >= 2  # the splits ran as blocks
    assert sum((launches(emu, "split_reduce_kernel") - reduces).values()) == 1
    # the split depends on the sizes only: the same bits at any SM count
    case = replace(SPLIT_CASES[name], sm=132)
    with tf32(True):
        assert torch.equal(run_forward(emu, case, dtype, tf32_check=dtype == torch.float32)[1],
                           out)


@pytest.mark.parametrize("name", FALLBACK_CASES)
def test_mma_forward_fallback(emu, name):
    got, _ = run_forward(emu, FALLBACK_CASES[name], torch.float16)
    assert sum(got.values()) == 0


def test_mma_forward_not_for_double(emu):
    got, _ = run_forward(emu, MMA_CASES["edges"][0], torch.float64)
    assert sum(got.values()) == 0


def assert_every_tile_ran(ran):
    """Each of the 12 instantiations (4 tiles x f16, bf16, float) of a kernel
    is among the launched names `ran`."""
    if not ran:
        pytest.skip("run together with the tests above")
    for t in T_NAMES.values():
        for tile in TILES:
            assert any(f"MmaPolicy<{t}, {tile}>" in k for k in ran), (t, tile)


def test_mma_every_forward_tile_ran(emu):
    assert_every_tile_ran(MMA_RAN)
