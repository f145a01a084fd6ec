"""Reads `nvcc -Xptxas -v` logs (from .ci/check_cuda.sh), writes a table of
registers, shared memory and occupancy per kernel instantiation, and fails on
any register spill or local-memory (stack) use.

Usage: python .ci/ptxas_table.py ARCH OUT.md FILE...
FILEs are ptxas logs and the PTX (.ptx) they were assembled from. A kernel's
block size is its `__launch_bounds__` (the PTX's `.maxntid`; every convext
kernel launches exactly that many threads: 128 or 256 for the tensor-core
tiles, kThreads and TileCfg::NT for the others); a kernel without one is
counted at 256 threads (the grid-stride kernels' launch size) and marked.
Occupancy is the sm_90 limit from registers, shared memory and warps for
that block size, the way the CUDA occupancy calculator counts it.
"""
import math
import re
import shutil
import subprocess
import sys

DEFAULT_THREADS = 256
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


def block_sizes(path):
    """.maxntid of each .entry in a PTX file: {mangled name: threads}."""
    sizes = {}
    for name, body in re.findall(r"\.entry\s+(\w+)\s*\((.*?)\{", open(path).read(), re.S):
        m = re.search(r"\.maxntid\s+(\d+)\s*,\s*(\d+)\s*,\s*(\d+)", body)
        if m:
            sizes[name] = int(m[1]) * int(m[2]) * int(m[3])
    return sizes


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


def occupancy(regs, smem, threads, a=SM90):
    warps = math.ceil(threads / 32)
    per_warp = math.ceil(regs * 32 / a["reg_unit"]) * a["reg_unit"]
    by_regs = (a["regs"] // per_warp) // warps
    by_smem = a["smem"] // (math.ceil(smem / a["smem_unit"]) * a["smem_unit"] + a["smem_reserved"])
    blocks = min(by_regs, by_smem, a["warps"] // warps, a["blocks"])
    return blocks, blocks * warps / a["warps"]


def main(arch, out, logs):
    kernels, threads = {}, {}
    for path in logs:
        if path.endswith(".ptx"):
            threads.update(block_sizes(path))
        else:
            kernels.update(parse(path))
    names = sorted(kernels)
    pretty = dict(zip(names, demangle(names)))
    rows, bad = [], []
    for name in sorted(names, key=lambda n: pretty[n]):
        k = kernels[name]
        nt = threads.get(name, DEFAULT_THREADS)
        blocks, occ = occupancy(k["regs"], k["smem"], nt)
        rows.append(f"| `{short(pretty[name])}` | {nt}{'' if name in threads else '*'} | "
                    f"{k['regs']} | {k['smem']} | {k['stack']} | {k['spill_st']}/{k['spill_ld']} | "
                    f"{blocks} | {occ:.0%} |")
        if k["stack"] or k["spill_st"] or k["spill_ld"]:
            bad.append(pretty[name])
    with open(out, "w") as f:
        f.write(f"# ptxas resource usage, {arch}\n\n"
                "Written by `.ci/check_cuda.sh` (nvcc `-Xptxas -v` over every kernel "
                "instantiation; `.ci/ptxas_table.py`), which fails on any spill or stack "
                "(local memory) use. Threads: the kernel's block size, its "
                "`__launch_bounds__` (* none: counted at the 256 threads it is launched "
                "with). Occupancy: resident blocks of that size per SM and the "
                "share of the SM's 64 warps they fill, from registers, shared memory "
                "(+1 KiB reserved per block) and warps.\n\n"
                "| kernel | threads | registers | shared B | stack B | spill st/ld B | "
                "blocks/SM | occupancy |\n|---|---:|---:|---:|---:|---:|---:|---:|\n")
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
