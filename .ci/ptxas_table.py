"""Reads `nvcc -Xptxas -v` logs (from .ci/check_cuda.sh), writes a table of
registers, shared memory and occupancy per kernel instantiation, and fails on
any register spill or local-memory (stack) use.

Usage: python .ci/ptxas_table.py ARCH OUT.md LOG...
Occupancy is the sm_90 limit from registers, shared memory and warps for a
256-thread block (every convext kernel launches 256 threads: kThreads and
TileCfg::NT), the way the CUDA occupancy calculator counts it.
"""
import math
import re
import shutil
import subprocess
import sys

THREADS = 256
SM90 = dict(warps=64, blocks=32, regs=65536, reg_unit=256, smem=233472, smem_reserved=1024,
            smem_unit=128)


def demangle(names):
    if not shutil.which("c++filt"):
        return names
    out = subprocess.run(["c++filt"], input="\n".join(names), capture_output=True, text=True)
    return out.stdout.splitlines()


def parse(path):
    kernels, cur = {}, None
    for line in open(path):
        m = re.search(r"Compiling entry function '(\w+)'", line)
        if m:
            cur = kernels.setdefault(m.group(1), {"file": path})
            continue
        m = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads",
                      line)
        if m and cur is not None:
            cur["stack"], cur["spill_st"], cur["spill_ld"] = map(int, m.groups())
        m = re.search(r"Used (\d+) registers(?:, used \d+ barriers)?(?:, (\d+) bytes smem)?", line)
        if m and cur is not None:
            cur["regs"] = int(m.group(1))
            cur["smem"] = int(m.group(2) or 0)
    return kernels


def short(name):
    """The kernel's name and template arguments, without its parameter list."""
    name = name.replace("(anonymous namespace)::", "").replace("convext::cuda::", "")
    name = name.removeprefix("void ")
    depth = 0
    for i, ch in enumerate(name):
        depth += (ch == "<") - (ch == ">")
        if ch == "(" and depth == 0:
            return name[:i]
    return name


def occupancy(regs, smem, a=SM90):
    warps = THREADS // 32
    per_warp = math.ceil(regs * 32 / a["reg_unit"]) * a["reg_unit"]
    by_regs = (a["regs"] // per_warp) // warps
    by_smem = a["smem"] // (math.ceil(smem / a["smem_unit"]) * a["smem_unit"] + a["smem_reserved"])
    blocks = min(by_regs, by_smem, a["warps"] // warps, a["blocks"])
    return blocks, blocks * warps / a["warps"]


def main(arch, out, logs):
    kernels = {}
    for log in logs:
        kernels.update(parse(log))
    names = sorted(kernels)
    pretty = dict(zip(names, demangle(names)))
    rows, bad = [], []
    for name in sorted(names, key=lambda n: pretty[n]):
        k = kernels[name]
        blocks, occ = occupancy(k["regs"], k["smem"])
        rows.append(f"| `{short(pretty[name])}` | "
                    f"{k['regs']} | {k['smem']} | {k['stack']} | {k['spill_st']}/{k['spill_ld']} | "
                    f"{blocks} | {occ:.0%} |")
        if k["stack"] or k["spill_st"] or k["spill_ld"]:
            bad.append(pretty[name])
    with open(out, "w") as f:
        f.write(f"# ptxas resource usage, {arch}\n\n"
                "Written by `.ci/check_cuda.sh` (nvcc `-Xptxas -v` over every kernel "
                "instantiation; `.ci/ptxas_table.py`), which fails on any spill or stack "
                "(local memory) use. Occupancy: resident 256-thread blocks per SM and the "
                "share of the SM's 64 warps they fill, from registers, shared memory "
                "(+1 KiB reserved per block) and warps.\n\n"
                "| kernel | registers | shared B | stack B | spill st/ld B | blocks/SM | "
                "occupancy |\n|---|---:|---:|---:|---:|---:|---:|\n")
        f.write("\n".join(rows) + "\n")
    print(f"ptxas: {len(rows)} kernel instantiations for {arch}, table in {out}")
    if not rows:
        print("ptxas: FAILED: no kernel found in the logs")
        return 1
    for b in bad:
        print(f"ptxas: FAILED: spill or local memory in {b}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], sys.argv[3:]))
