"""Each CPU microkernel on its own, for every instruction set of the table
(csrc/ops/cpu/ukernels/isa_table.cpp) that this CPU runs, whatever
CONVEXT_ISA caps the ops at: the GEMM tile kernel on packed panels built here
(edge values of kc, full MR x NR tiles with ldc > NR, accumulate on and off,
bfloat16 pairs with an odd kc, NaN/inf), the AMX tile kernel on its own panel
layout (kc around and past its 32-k chunk, the chunk's zero padding really
read), and the depthwise row kernels
(lengths around the vector width, the kRowSlack contract, tap counts around
taps_dot's block of 4). The reference is float64 arithmetic on the very same
values, with the dot-product error bound of conftest.tolerance.
The kernels run through convext._C._ukernel_* (ukernel_calls.h)."""
import itertools
import os

import pytest
import torch

from convext import _C

TABLE = _C._ukernel_isas()
RUN = [name for name, runs in TABLE if runs]
ROW_SLACK = _C._ukernel_row_slack
DOT_LANES = _C._ukernel_dot_lanes
REPORTED = {"amx": "avx512+bf16+amx", "avx512bf16": "avx512+bf16"}
TILE_ISAS = [n for n in RUN if _C._ukernel_tile(n, "bfloat16_tiles")[0]] or \
    [pytest.param("amx", marks=pytest.mark.skip("this CPU has no AMX-BF16 kernel"))]
GEMM_DTYPES = [torch.float32, torch.float64, torch.bfloat16]
ROW_DTYPES = [torch.float32, torch.float64]
# Lengths around every vector width (2, 4, 8, 16) and taps_row's block of
# 64 floats, and a long one.
ROW_LENGTHS = [0, 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 129, 300]


def dtype_name(dtype):
    return str(dtype).replace("torch.", "")


def accum_eps(dtype):
    return torch.finfo(torch.float64 if dtype == torch.float64 else torch.float32).eps


def tile(isa, dtype):
    mr, nr, kr, _ = _C._ukernel_tile(isa, dtype_name(dtype))
    if mr == 0:
        pytest.skip(f"{isa} has no {dtype_name(dtype)} GEMM kernel")
    return mr, nr, kr


def pack(mat, kr):
    """(kc, width) -> the kernel's panel: ceil(kc/kr) rows of width*kr values,
    kr consecutive k per lane, the last row zero-padded. Returns (panel, the
    padded matrix)."""
    kc, width = mat.shape
    kp = -(-kc // kr) * kr
    padded = torch.zeros(kp, width, dtype=mat.dtype)
    padded[:kc] = mat
    return padded.reshape(kp // kr, kr, width).transpose(1, 2).contiguous().reshape(-1), padded


def assert_close_bound(got, ref, bound, what):
    """got vs the float64 ref: NaN where ref is NaN, the same infinities,
    |got - ref| <= bound elsewhere."""
    got = got.double()
    assert torch.equal(got.isnan(), ref.isnan()), f"{what}: NaN positions differ"
    inf = ref.isinf()
    assert torch.equal(got[inf], ref[inf]) and not got[~inf].isinf().any(), \
        f"{what}: infinities differ"
    fin = ref.isfinite()
    err = (got[fin] - ref[fin]).abs()
    bad = ~(err <= bound[fin])
    assert not bad.any(), (f"{what}: {int(bad.sum())} of {int(fin.sum())} out of bound, "
                           f"max error {err.max().item():.3e}")


def poison(A, B):
    """Positive values, one NaN in A (row 3 % kc, column 1) and one inf in B
    (row 2 % kc, the last column)."""
    A.abs_()
    B.abs_()
    A[3 % A.shape[0], 1] = float("nan")
    B[2 % B.shape[0], B.shape[1] - 1] = float("inf")


def run_gemm(isa, dtype, kc, ldc_extra=5, accumulate=False, seed=0, poison=None):
    """Runs the kernel on random panels; returns (C buffer, float64 ref, bound, mr, nr, ldc)."""
    mr, nr, kr = tile(isa, dtype)
    gen = torch.Generator().manual_seed(seed)
    A = torch.randn(kc, mr, generator=gen, dtype=torch.float64).to(dtype)
    B = torch.randn(kc, nr, generator=gen, dtype=torch.float64).to(dtype)
    if poison:
        poison(A, B)
    a, Ap = pack(A, kr)
    b, Bp = pack(B, kr)
    ldc = nr + ldc_extra
    c_dtype = torch.float32 if dtype == torch.bfloat16 else dtype
    c0 = torch.randn(mr, ldc, generator=gen, dtype=torch.float64).to(c_dtype)
    c = c0.clone().reshape(-1)
    _C._ukernel_gemm(isa, kc, a, b, c, ldc, accumulate)
    c = c.reshape(mr, ldc)
    A64, B64 = Ap.double(), Bp.double()
    ref = A64.T @ B64
    bound = (kc + 2) * accum_eps(dtype) * (A64.abs().T @ B64.abs())
    if accumulate:
        ref = ref + c0[:, :nr].double()
        bound = bound + accum_eps(dtype) * ref.abs()
    # columns past NR belong to the next tile: never written
    assert torch.equal(c[:, nr:], c0[:, nr:]), f"{isa}: wrote past NR"
    return c[:, :nr], ref, bound


def kc_values(isa, dtype):
    kr = tile(isa, dtype)[2]
    return sorted({v for v in (1, 2, 3, kr - 1, kr, kr + 1, 7, 17, 64, 257) if v >= 1})


@pytest.mark.parametrize("isa", [n for n, _ in TABLE])
def test_table_row_is_reported_or_skipped(isa):
    """Every table row either runs here (and has float kernels) or is skipped
    by its CPU predicate, and convext's own set is the first row at or below
    the CONVEXT_ISA cap that runs."""
    names = [n for n, _ in TABLE]
    assert names == ["amx", "avx512bf16", "avx512", "avx2", "generic"]
    cap = os.environ.get("CONVEXT_ISA")
    first = 0 if cap is None else names.index(cap) if cap in names else len(names) - 1
    chosen = next(n for n, runs in TABLE[first:] if runs)
    assert _C.cpu_isa() == REPORTED.get(chosen, chosen)
    if isa not in RUN:
        with pytest.raises(RuntimeError, match="not run by this CPU"):
            _C._ukernel_tile(isa, "float32")
        pytest.skip(f"this CPU has no {isa}")
    assert _C._ukernel_tile(isa, "float32")[0] > 0
    assert (_C._ukernel_tile(isa, "bfloat16")[0] > 0) == (isa in ("amx", "avx512bf16"))
    assert (_C._ukernel_tile(isa, "bfloat16_tiles")[0] > 0) == (isa == "amx")


@pytest.mark.parametrize("accumulate", [False, True])
@pytest.mark.parametrize("dtype", GEMM_DTYPES, ids=dtype_name)
@pytest.mark.parametrize("isa", RUN)
def test_gemm_kernel_matches_float64(isa, dtype, accumulate):
    for kc in kc_values(isa, dtype):
        for ldc_extra in (0, 5):
            got, ref, bound = run_gemm(isa, dtype, kc, ldc_extra, accumulate, seed=kc)
            assert_close_bound(got, ref, bound, f"{isa} {dtype_name(dtype)} kc={kc} "
                               f"ldc=nr+{ldc_extra} accumulate={accumulate}")


@pytest.mark.parametrize("isa", [n for n in RUN if _C._ukernel_tile(n, "bfloat16")[0]] or
                         [pytest.param("avx512bf16", marks=pytest.mark.skip("no bf16 kernel"))])
def test_bf16_odd_kc_reads_the_zero_padded_pair(isa):
    """An odd kc leaves the last pair half empty: the packers zero it, and the
    kernel (which always multiplies whole pairs) must then give the exact sum
    of the kc products; a non-zero pad shows in the result, so the padding
    really is read (the contract the packers keep matters)."""
    mr, nr, kr = tile(isa, torch.bfloat16)
    kc = 5
    A = torch.ones(kc, mr, dtype=torch.bfloat16)
    B = torch.ones(kc, nr, dtype=torch.bfloat16)
    a, _ = pack(A, kr)
    b, _ = pack(B, kr)
    c = torch.zeros(mr * nr)
    _C._ukernel_gemm(isa, kc, a, b, c, nr, False)
    assert torch.equal(c, torch.full_like(c, kc))
    a[-2 * mr + 1::2] = 1  # the pad lane of the last pair of every A row
    b[-2 * nr + 1::2] = 1
    _C._ukernel_gemm(isa, kc, a, b, c, nr, False)
    assert torch.equal(c, torch.full_like(c, kc + 1))


@pytest.mark.parametrize("dtype", GEMM_DTYPES, ids=dtype_name)
@pytest.mark.parametrize("isa", RUN)
def test_gemm_kernel_propagates_nan_and_inf(isa, dtype):
    """A NaN in A's row i poisons C's row i only; an inf in B's column j
    (with finite, positive A) makes C's column j inf and leaves the rest."""
    for kc in (1, 4, 17):
        got, ref, bound = run_gemm(isa, dtype, kc, poison=poison)
        assert ref.isnan().any() and ref.isinf().any()
        assert_close_bound(got, ref, bound, f"{isa} {dtype_name(dtype)} kc={kc} NaN/inf")


def tile_panels(A, B, ka):
    """The AMX kernel's panels (see UKernel, microkernel_amx.cpp): k padded to
    ka with zeros; A as ka-wide chunks of MR rows of ka consecutive k, B as
    the usual pair rows. Returns (a, b, padded A, padded B)."""
    kc = A.shape[0]
    kp = -(-kc // ka) * ka
    Ap = torch.zeros(kp, A.shape[1], dtype=A.dtype)
    Bp = torch.zeros(kp, B.shape[1], dtype=B.dtype)
    Ap[:kc], Bp[:kc] = A, B
    a = pack(Ap, ka)[0]
    b = pack(Bp, 2)[0]
    return a, b, Ap, Bp


def run_tiles(isa, kc, accumulate, ldc_extra, seed, poison=None):
    mr, nr, kr, ka = _C._ukernel_tile(isa, "bfloat16_tiles")
    assert kr == 2 and ka % 2 == 0
    gen = torch.Generator().manual_seed(seed)
    A = torch.randn(kc, mr, generator=gen, dtype=torch.float64).bfloat16()
    B = torch.randn(kc, nr, generator=gen, dtype=torch.float64).bfloat16()
    if poison:
        poison(A, B)
    a, b, Ap, Bp = tile_panels(A, B, ka)
    ldc = nr + ldc_extra
    c0 = torch.randn(mr, ldc, generator=gen, dtype=torch.float64).float()
    c = c0.clone().reshape(-1)
    _C._ukernel_gemm(isa, kc, a, b, c, ldc, accumulate, tiles=True)
    c = c.reshape(mr, ldc)
    assert torch.equal(c[:, nr:], c0[:, nr:]), f"{isa}: wrote past NR"
    A64, B64 = Ap.double(), Bp.double()
    ref = A64.T @ B64
    bound = (kc + 2) * accum_eps(torch.bfloat16) * (A64.abs().T @ B64.abs())
    if accumulate:
        ref = ref + c0[:, :nr].double()
        bound = bound + accum_eps(torch.bfloat16) * ref.abs()
    return c[:, :nr], ref, bound


@pytest.mark.parametrize("accumulate", [False, True])
@pytest.mark.parametrize("isa", TILE_ISAS)
def test_tile_kernel_matches_float64(isa, accumulate):
    """The AMX tile kernel over kc around its 32-k chunk and several chunks,
    ldc > NR, accumulate on and off."""
    for kc in (1, 2, 3, 31, 32, 33, 64, 100, 384):
        for ldc_extra in (0, 5):
            got, ref, bound = run_tiles(isa, kc, accumulate, ldc_extra, seed=kc)
            assert_close_bound(got, ref, bound, f"{isa} tiles kc={kc} ldc=nr+{ldc_extra} "
                               f"accumulate={accumulate}")


@pytest.mark.parametrize("isa", TILE_ISAS)
def test_tile_kernel_propagates_nan_and_inf(isa):
    for kc in (1, 17, 40):
        got, ref, bound = run_tiles(isa, kc, False, 3, seed=kc, poison=poison)
        assert ref.isnan().any() and ref.isinf().any()
        assert_close_bound(got, ref, bound, f"{isa} tiles kc={kc} NaN/inf")


@pytest.mark.parametrize("isa", TILE_ISAS)
def test_tile_kernel_reads_the_zero_padded_chunk(isa):
    """kc = 5 leaves 27 pad k of the 32-k chunk: the packers zero them and the
    kernel multiplies the whole chunk, so a non-zero pad in both panels shows
    in the result (the padding contract is real, and C is every row's)."""
    mr, nr, kr, ka = _C._ukernel_tile(isa, "bfloat16_tiles")
    kc = 5
    a, b, _, _ = tile_panels(torch.ones(kc, mr).bfloat16(), torch.ones(kc, nr).bfloat16(), ka)
    c = torch.zeros(mr * nr)
    _C._ukernel_gemm(isa, kc, a, b, c, nr, False, tiles=True)
    assert torch.equal(c, torch.full_like(c, kc))
    a.view(mr, ka)[:, kc] = 1  # k = 5, the first pad k of every A row
    b.view(ka // 2, nr, 2)[kc // 2, :, kc % 2] = 1
    _C._ukernel_gemm(isa, kc, a, b, c, nr, False, tiles=True)
    assert torch.equal(c, torch.full_like(c, kc + 1))


def row_inputs(n, ntaps, dtype, seed, length=None):
    gen = torch.Generator().manual_seed(seed)
    src = torch.randn(ntaps, length or n, generator=gen, dtype=torch.float64).to(dtype)
    return gen, src


@pytest.mark.parametrize("dtype", ROW_DTYPES, ids=dtype_name)
@pytest.mark.parametrize("isa", RUN)
def test_taps_row(isa, dtype):
    """out[i] = init + sum_t w[t] src[t][i] for i < n; it may read and write
    up to n + kRowSlack (NaN there must not leak into out[:n]), never beyond."""
    eps = accum_eps(dtype)
    for n in ROW_LENGTHS:
        for ntaps in (1, 3, 9):
            gen, src = row_inputs(n, ntaps, dtype, seed=n * 10 + ntaps, length=n + ROW_SLACK)
            src[:, n:] = float("nan")  # the slack: read, never used for out[:n]
            w = torch.randn(ntaps, generator=gen, dtype=torch.float64).to(dtype)
            init = 0.375
            guard = 7
            out = torch.full((n + ROW_SLACK + guard,), -123.0, dtype=dtype)
            _C._ukernel_taps_row(isa, out, n, src, w, init)
            s64, w64 = src[:, :n].double(), w.double()
            ref = init + (w64[:, None] * s64).sum(0)
            bound = (ntaps + 2) * eps * (abs(init) + (w64.abs()[:, None] * s64.abs()).sum(0))
            assert_close_bound(out[:n], ref, bound, f"{isa} taps_row n={n} ntaps={ntaps}")
            assert (out[n + ROW_SLACK:] == -123.0).all(), f"{isa}: wrote past n + kRowSlack"


@pytest.mark.parametrize("isa", RUN)
def test_transpose_words16(isa):
    """The bfloat16/float weight packers' word transpose: rows j < nj of src
    become columns, columns nj..15 zeros; rows of dst past np and columns
    past 16 untouched. Partial blocks of 16 words, and nj from 0 to 16."""
    gen = torch.Generator().manual_seed(3)
    for nj, np_ in [(16, 16), (16, 40), (5, 17), (0, 3), (1, 1), (16, 0), (11, 33)]:
        src = torch.randint(-2**31, 2**31 - 1, (max(nj, 1), np_ + 3), generator=gen,
                            dtype=torch.int32)
        dst = torch.full((np_ + 2, 20), 7, dtype=torch.int32)
        if not _C._ukernel_transpose_words16(isa, dst, src, nj, np_):
            pytest.skip(f"{isa} has no transpose_words16")
        want = torch.zeros(np_, 16, dtype=torch.int32)
        want[:, :nj] = src[:nj, :np_].t()
        assert torch.equal(dst[:np_, :16], want), (nj, np_)
        assert (dst[np_:] == 7).all() and (dst[:, 16:] == 7).all(), (nj, np_)


# bfloat16 bit patterns as int16: inf 0x7F80, -inf 0xFF80, a NaN 0x7FC1
BF16_INF, BF16_NEG_INF, BF16_NAN = 0x7F80, -0x80, 0x7FC1


@pytest.mark.parametrize("isa", RUN)
def test_transpose_halves32(isa):
    """The AMX grad_weight's grad_output transpose: rows j < nj of src become
    columns, columns nj..31 zeros (rows past nj are null pointers, so a read
    of one crashes); rows of dst past np and columns past 32 untouched. Odd
    and partial blocks of 32 values, and nj from 0 to 32. It reports a
    bfloat16 inf or NaN among the values it moved, and only those."""
    gen = torch.Generator().manual_seed(4)
    for nj, np_ in [(32, 32), (32, 64), (32, 97), (7, 33), (0, 3), (1, 1), (32, 0), (31, 2),
                    (17, 63)]:
        src = torch.randint(-2**15, 2**15 - 1, (max(nj, 1), np_), generator=gen,
                            dtype=torch.int16)  # exact rows: an overread leaves the tensor
        src &= ~0x4000  # exponents below all-ones: finite as bfloat16
        dst = torch.full((np_ + 2, 36), 7, dtype=torch.int16)
        flag = _C._ukernel_transpose_halves32(isa, dst, src, nj, np_)
        if flag < 0:
            pytest.skip(f"{isa} has no transpose_halves32")
        want = torch.zeros(np_, 32, dtype=torch.int16)
        want[:, :nj] = src[:nj, :np_].t()
        assert torch.equal(dst[:np_, :32], want), (nj, np_)
        assert (dst[np_:] == 7).all() and (dst[:, 32:] == 7).all(), (nj, np_)
        assert flag == 0, (nj, np_)
        for bits, (j, p) in itertools.product((BF16_INF, BF16_NAN, BF16_NEG_INF),
                                              [(0, 0), (nj - 1, np_ - 1), (nj // 2, np_ // 2)]):
            if nj == 0 or np_ == 0:
                continue
            bad = src.clone()
            bad[j, p] = bits
            assert _C._ukernel_transpose_halves32(isa, dst, bad, nj, np_) == 1, (nj, np_, j, p)


@pytest.mark.parametrize("isa", RUN)
def test_interleave_halves(isa):
    """The grad_weight's pair interleave: (a[j], b[j]) into panels of np
    columns ldo apart, an absent row as zeros, nothing else written; a
    bfloat16 inf or NaN in either row reported."""
    gen = torch.Generator().manual_seed(5)
    for n, np_, ldo in [(64, 16, 40), (33, 32, 70), (5, 16, 32), (0, 16, 32), (96, 96, 200)]:
        a, b = (torch.randint(-2**15, 2**15 - 1, (n,), generator=gen, dtype=torch.int16) & ~0x4000
                for _ in range(2))
        for ra, rb in [(a, b), (a, None), (None, b), (None, None)]:
            size = (max(n, 1) - 1) // np_ * ldo + 2 * np_ + 5
            out = torch.full((size,), 7, dtype=torch.int16)
            flag = _C._ukernel_interleave_halves(isa, out, ldo, np_, ra, rb, n)
            if flag < 0:
                pytest.skip(f"{isa} has no interleave_halves")
            want = out.clone().fill_(7)
            for j in range(n):
                at = (j // np_) * ldo + 2 * (j % np_)
                want[at] = ra[j] if ra is not None else 0
                want[at + 1] = rb[j] if rb is not None else 0
            assert torch.equal(out, want), (n, np_, ra is None, rb is None)
            assert flag == 0
        for j in {0, n // 2, n - 1} if n else ():
            for which in (0, 1):
                rows = [a.clone(), b.clone()]
                rows[which][j] = BF16_NAN
                out = torch.zeros((n - 1) // np_ * ldo + 2 * np_, dtype=torch.int16)
                assert _C._ukernel_interleave_halves(isa, out, ldo, np_, *rows, n) == 1, (n, j)


@pytest.mark.parametrize("dtype", ROW_DTYPES, ids=dtype_name)
@pytest.mark.parametrize("isa", RUN)
def test_taps_row_nan_stays_in_its_lane(isa, dtype):
    n, ntaps = 37, 3
    gen, src = row_inputs(n, ntaps, dtype, seed=1, length=n + ROW_SLACK)
    src[1, 20] = float("nan")
    out = torch.zeros(n + ROW_SLACK, dtype=dtype)
    _C._ukernel_taps_row(isa, out, n, src, torch.ones(ntaps, dtype=dtype), 0.0)
    assert out[20].isnan() and not out[:n].isnan().sum() > 1


@pytest.mark.parametrize("dtype", ROW_DTYPES, ids=dtype_name)
@pytest.mark.parametrize("isa", RUN)
def test_taps_dot(isa, dtype):
    """The kDotLanes lanes of tap t gain sum_i g[i] src[t][i] (i < n) in all;
    tap counts around the kernel's block of 4 taps."""
    eps = accum_eps(dtype)
    for n in ROW_LENGTHS:
        for ntaps in (1, 3, 4, 5, 9):
            gen, src = row_inputs(n, ntaps, dtype, seed=n * 10 + ntaps)
            g = torch.randn(n, generator=gen, dtype=torch.float64).to(dtype)
            acc0 = torch.randn(ntaps * DOT_LANES, generator=gen, dtype=torch.float64).to(dtype)
            acc = acc0.clone()
            _C._ukernel_taps_dot(isa, acc, g, n, src)
            got = acc.double().reshape(ntaps, DOT_LANES).sum(1)
            lanes0 = acc0.double().reshape(ntaps, DOT_LANES)
            prod = g.double()[None, :] * src.double()
            ref = lanes0.sum(1) + prod.sum(1)
            bound = (n + 2 * DOT_LANES) * eps * (lanes0.abs().sum(1) + prod.abs().sum(1))
            assert_close_bound(got, ref, bound, f"{isa} taps_dot n={n} ntaps={ntaps}")


@pytest.mark.parametrize("dtype", ROW_DTYPES, ids=dtype_name)
@pytest.mark.parametrize("isa", RUN)
def test_vtaps_row_and_acc(isa, dtype):
    """Channels-last rows of np pixels (one after the other, n channels each):
    out[p][i] = init[i] + sum_t w[t][i] src[t][p][i] and
    acc[t][i] += sum_p g[p][i] src[t][p][i], exactly for i < n, p < np
    (nothing past them written); np covers the 8- and 4-pixel blocks and
    their tails."""
    eps = accum_eps(dtype)
    for n in ROW_LENGTHS:
        for ntaps, np_ in ((1, 1), (4, 13), (9, 8), (9, 3), (25, 5)):
            gen, src = row_inputs(n, ntaps, dtype, seed=n * 10 + ntaps, length=np_ * n + 5)
            s3 = src[:, :np_ * n].double().view(ntaps, np_, n)
            w = torch.randn(ntaps, n, generator=gen, dtype=torch.float64).to(dtype)
            init = torch.randn(n, generator=gen, dtype=torch.float64).to(dtype)
            out = torch.full((np_ * n + 9,), -123.0, dtype=dtype)
            _C._ukernel_vtaps_row(isa, out, n, np_, src, w, init)
            prod = w.double()[:, None, :] * s3
            ref = init.double() + prod.sum(0)
            bound = (ntaps + 2) * eps * (init.double().abs() + prod.abs().sum(0))
            what = f"{isa} n={n} ntaps={ntaps} np={np_}"
            assert_close_bound(out[:np_ * n].view(np_, n), ref, bound, "vtaps_row " + what)
            assert (out[np_ * n:] == -123.0).all(), f"vtaps_row wrote past np*n: {what}"

            g = torch.randn(np_ * n, generator=gen, dtype=torch.float64).to(dtype)
            acc0 = torch.randn(ntaps, n + 3, generator=gen, dtype=torch.float64).to(dtype)
            acc = acc0.clone()
            _C._ukernel_vtaps_acc(isa, acc, n, np_, g, src)
            prod = g.double().view(1, np_, n) * s3
            ref = acc0[:, :n].double() + prod.sum(1)
            bound = (np_ + 2) * eps * (acc0[:, :n].double().abs() + prod.abs().sum(1))
            assert_close_bound(acc[:, :n], ref, bound, "vtaps_acc " + what)
            assert torch.equal(acc[:, n:], acc0[:, n:]), f"vtaps_acc wrote past n: {what}"


def test_bad_calls_raise():
    """The entry points check the contract's sizes instead of overrunning."""
    isa = RUN[0]
    mr, nr, kr = tile(isa, torch.float32)
    a = torch.zeros(4 * mr)
    b = torch.zeros(4 * nr)
    with pytest.raises(RuntimeError, match="elements, the kernel reaches"):
        _C._ukernel_gemm(isa, 5, a, b, torch.zeros(mr * nr), nr, False)
    with pytest.raises(RuntimeError, match="ldc >= nr"):
        _C._ukernel_gemm(isa, 4, a, b, torch.zeros(mr * nr), nr - 1, False)
    with pytest.raises(RuntimeError, match="length >= "):
        _C._ukernel_taps_row(isa, torch.zeros(40), 8, torch.zeros(2, 8), torch.zeros(2), 0.0)
    with pytest.raises(RuntimeError, match="unknown or not run"):
        _C._ukernel_tile("sse9", "float32")
