"""The CI's ptxas check (.ci/ptxas_table.py, run by .ci/check_cuda.sh) fails
on register spills and local memory, and tabulates occupancy correctly, at
each kernel's own block size (the PTX's .maxntid)."""
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / ".ci" / "ptxas_table.py"

CLEAN = """\
ptxas info    : Compiling entry function '_Z6kernelPf' for 'sm_90'
ptxas info    : Function properties for _Z6kernelPf
    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 128 registers, used 1 barriers, 16896 bytes smem, 400 bytes cmem[0]
"""
SPILL = CLEAN.replace("_Z6kernelPf", "_Z5otherPf").replace(
    "0 bytes stack frame, 0 bytes spill stores", "8 bytes stack frame, 8 bytes spill stores")


# the PTX of CLEAN's kernel with __launch_bounds__(128, 4)
PTX_128 = """\
.visible .entry _Z6kernelPf(
	.param .u64 _Z6kernelPf_param_0
)
.maxntid 128, 1, 1
.minnctapersm 4
{
	ret;
}
"""


def run(tmp_path, logs, ptx=()):
    paths = []
    for i, text in enumerate(ptx):
        p = tmp_path / f"{i}.ptx"
        p.write_text(text)
        paths.append(str(p))
    for i, text in enumerate(logs):
        p = tmp_path / f"{i}.log"
        p.write_text(text)
        paths.append(str(p))
    out = tmp_path / "table.md"
    r = subprocess.run([sys.executable, str(SCRIPT), "sm_90", str(out), *paths],
                       capture_output=True, text=True)
    return r, out.read_text() if out.exists() else ""


def test_clean_kernels_pass_with_occupancy(tmp_path):
    r, table = run(tmp_path, [CLEAN])
    assert r.returncode == 0, r.stdout
    # no .maxntid: counted at 256 threads (marked); 128 regs x 256 threads:
    # 2 blocks by registers, 16 warps of 64
    assert "| `kernel` | 256* | 128 | 16896 | 0 | 0/0 | 2 | 25% |" in table


def test_block_size_from_the_ptx(tmp_path):
    """A 128-thread kernel at 128 registers: 4 blocks of 4 warps, not 2 of 8."""
    r, table = run(tmp_path, [CLEAN], [PTX_128])
    assert r.returncode == 0, r.stdout
    assert "| `kernel` | 128 | 128 | 16896 | 0 | 0/0 | 4 | 25% |" in table
    # shared memory binds first: 233472 // (16896 + 1024) = 13 blocks, capped by
    # registers (65536 // (24 regs x 32 rounded to 256 = 768) // 4 warps = 21)
    r, table = run(tmp_path, [CLEAN.replace("Used 128", "Used 24")], [PTX_128])
    assert "| `kernel` | 128 | 24 | 16896 | 0 | 0/0 | 13 | 81% |" in table


def test_spills_and_local_memory_fail(tmp_path):
    r, table = run(tmp_path, [CLEAN, SPILL])
    assert r.returncode == 1
    assert "FAILED: spill or local memory in other(float*)" in r.stdout
    assert "| `other` | 256* | 128 | 16896 | 8 | 8/0 |" in table


def test_no_kernels_fail(tmp_path):
    r, _ = run(tmp_path, [""])
    assert r.returncode == 1
