"""bfloat16 backward on CPU: grad_input and grad_weight run on the AVX512-BF16
dot-product kernel where the CPU has it (bfloat16 pairs along the reduction,
float32 sums), on the float32 kernel otherwise. Both must give torch's
float64 result within the dtype-aware bound, and grad_weight must stay
bitwise independent of the thread count. The whole file also runs under
CONVEXT_ISA=avx512 (no bf16 kernel) in a fresh process."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import convext
from conftest import (CONVEXT_FN, TORCH_FN, ConvCase, assert_close_to_torch, case_id,
                      conv_and_grads)

BF16 = torch.bfloat16

CASES = [
    ConvCase(2, 2, 8, 16, (12, 10), (3, 3), padding=1),
    ConvCase(2, 3, 5, 7, (9, 11), (3, 2), stride=(2, 3), padding=(1, 0)),     # odd everything
    ConvCase(2, 2, 8, 12, (14, 13), (3, 3), padding=1, groups=4),
    ConvCase(2, 2, 4, 6, (11, 12), (2, 2), stride=3),                          # stride > kernel
    ConvCase(2, 1, 6, 10, (13, 15), (3, 3), padding="same", dilation=2),
    ConvCase(2, 2, 3, 16, (65, 63), (3, 3)),                # few tiles: split, odd chunks
    ConvCase(2, 1, 64, 64, (9, 9), (3, 3), padding=1),                         # many tiles
    ConvCase(1, 3, 6, 9, (257,), (5,), stride=2, padding=1),                   # odd reductions
    ConvCase(1, 1, 4, 8, (1001,), (3,), dilation=3),
    ConvCase(2, 0, 4, 8, (6, 6), (3, 3), padding=1),                           # empty batch
]


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_bf16_grads_match_torch(case, layout):
    if layout == "channels_last" and case.dims == 1:
        pytest.skip("1D tensors have no channels_last")
    x, w, b = case.make(BF16)
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
        w = w.contiguous(memory_format=torch.channels_last)
    assert_close_to_torch(case.dims, x, w, b, **case.conv_kwargs)


@pytest.mark.parametrize("case", CASES[:3] + CASES[5:8], ids=case_id)
def test_bf16_grads_of_strided_views(case):
    x, w, b = case.make(BF16)
    x = torch.cat([x, x], dim=-1)[..., ::2]  # every other column: a non-contiguous view
    assert_close_to_torch(case.dims, x, w, b, **case.conv_kwargs)


@pytest.mark.parametrize("case", [CASES[1], CASES[5], CASES[7]], ids=case_id)
def test_bf16_grad_weight_is_exact_when_every_sum_is(case):
    """Products of two bfloat16 are exact in float32, so with small integers
    (every partial sum exact in float32) the only possible difference, the
    order of the additions, vanishes: the result must then be torch's float64
    one, rounded once to bfloat16. A pair dealt to the wrong column, or an odd tail not zeroed,
    cannot pass."""
    gen = torch.Generator().manual_seed(3)
    x, w, b = case.make(BF16)

    def ints(t):
        return torch.randint(-3, 4, t.shape, generator=gen).to(BF16)

    x, w, b = ints(x), ints(w), ints(b)
    out, grads, go = conv_and_grads(CONVEXT_FN[case.dims], x, w, b,
                                    lambda y: ints(y), **case.conv_kwargs)
    _, ref, _ = conv_and_grads(TORCH_FN[case.dims], x.double(), w.double(), b.double(),
                               go.double(), **case.conv_kwargs)
    for name, g, r in zip(("grad_input", "grad_weight", "grad_bias"), grads, ref):
        # exact float32 sums round to bfloat16 as the exact value does
        assert torch.equal(g, r.to(BF16)), name


@pytest.fixture
def threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("case", [CASES[5], CASES[2], CASES[7]], ids=case_id)
def test_bf16_grad_weight_does_not_depend_on_thread_count(case, threads):
    x, w, b = case.make(BF16)
    results = []
    for n in (1, 2, 3):
        torch.set_num_threads(n)
        _, grads, _ = conv_and_grads(CONVEXT_FN[case.dims], x, w, b, torch.ones_like,
                                     **case.conv_kwargs)
        results.append(grads)
    for grads in results[1:]:
        for a, c in zip(grads, results[0]):
            assert torch.equal(a, c)


@pytest.mark.parametrize("cap", ["avx512", "avx512bf16"])
def test_this_file_passes_without_the_bf16_kernel(cap):
    """The same checks with the bfloat16 kernels capped away: under avx512
    bfloat16 packs as float for the float32 kernel; under avx512bf16 (on an
    AMX CPU) it runs the AVX512-BF16 kernel instead of AMX tiles."""
    running = {"avx512+bf16": ["avx512"], "avx512+bf16+amx": ["avx512", "avx512bf16"]}
    if cap not in running.get(convext.cpu_isa(), []):
        pytest.skip(f"this process's kernels ({convext.cpu_isa()}) do not rise above {cap}")
    if os.environ.get("CONVEXT_ISA"):
        pytest.skip("already capped")
    here = Path(__file__).resolve()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", str(here), "-q", "-x", "-p", "no:cacheprovider",
         "-k", "not without_the_bf16_kernel"],
        cwd=here.parents[1], env=dict(os.environ, CONVEXT_ISA=cap),
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
