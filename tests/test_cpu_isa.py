"""Every CPU microkernel set gives torch's results. The set is chosen once per
process from the CPU's features, capped by CONVEXT_ISA, so each one is tested
in a fresh process: convext must report the requested set, and the value
tests of test_functional.py must pass under it, for every dtype (bfloat16
uses the AMX tile kernel under amx where the GEMM packs for it, the
AVX512-BF16 kernel under avx512bf16, the float32 one otherwise)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

import convext

TESTS_DIR = Path(__file__).resolve().parent
ROOT = TESTS_DIR.parent


def cpu_flags():
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def cpu_supports(isa):
    if isa == "amx":  # also needs the OS's permission, which only the table's predicate asks
        return dict(convext._C._ukernel_isas())["amx"]
    flags = cpu_flags()
    if flags is None:
        pytest.skip("cannot read the CPU's features")
    needed = {"generic": set(), "avx2": {"avx2", "fma"}, "avx512": {"avx512f"},
              "avx512bf16": {"avx512f", "avx512_bf16"}}[isa]
    return needed <= flags


def run_python(args, isa, timeout):
    env = dict(os.environ, CONVEXT_ISA=isa)
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


ISAS = ["generic", "avx2", "avx512", "avx512bf16", "amx"]
REPORTED = {"avx512bf16": "avx512+bf16", "amx": "avx512+bf16+amx"}


@pytest.mark.parametrize("isa", ISAS)
def test_isa_cap_is_honoured(isa):
    if not cpu_supports(isa):
        pytest.skip(f"this CPU has no {isa}")
    result = run_python(["-c", "import convext; print(convext.cpu_isa())"], isa, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == REPORTED.get(isa, isa)


@pytest.mark.parametrize("isa", ISAS)
def test_values_match_torch_under_isa(isa):
    if not cpu_supports(isa):
        pytest.skip(f"this CPU has no {isa}")
    if REPORTED.get(isa, isa) == convext.cpu_isa():
        pytest.skip(f"{isa} is this process's set: test_functional.py runs under it directly")
    result = run_python(["-m", "pytest", str(TESTS_DIR / "test_functional.py"), "-q", "-x",
                         "-p", "no:cacheprovider", "-k", "matches_torch"], isa, timeout=300)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
