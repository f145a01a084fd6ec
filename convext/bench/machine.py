"""What machine and software a run measured: metadata for the JSON/Markdown,
a hostname-free device tag for file names, and the peak FLOP/s estimate."""
import datetime
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

import torch

import convext

# The repository checkout this convext runs from (convext/ beside .git and
# benchmarks/), or None for an installed package.
_TOP = Path(__file__).resolve().parents[2]
ROOT = _TOP if (_TOP / "benchmarks").is_dir() and (_TOP / "setup.py").is_file() else None

# Dense (no sparsity) peak TFLOP/s. fp32 is the CUDA-core rate, tf32 the
# tensor-core rate float32 convs get with TF32 on; fp16/bf16 are tensor-core
# rates; fp64 is the non-tensor rate. From NVIDIA's H100/H200 datasheets
# (their TF32 figures are with sparsity: halved here). First matching name wins.
GPU_PEAK_TFLOPS = [
    ("H200 NVL", "H200 NVL",
     {"float64": 30, "float32": 60, "tf32": 418, "bfloat16": 835, "float16": 835}),
    ("H200", "H200 SXM",
     {"float64": 34, "float32": 67, "tf32": 494, "bfloat16": 989, "float16": 989}),
    ("H100 NVL", "H100 NVL",
     {"float64": 30, "float32": 60, "tf32": 418, "bfloat16": 835, "float16": 835}),
    ("H100 PCIe", "H100 PCIe",
     {"float64": 26, "float32": 51, "tf32": 378, "bfloat16": 756, "float16": 756}),
    ("H100", "H100 SXM",
     {"float64": 34, "float32": 67, "tf32": 494, "bfloat16": 989, "float16": 989}),
]

def _run(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=10,
                              check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def cpuinfo():
    """First processor's fields of /proc/cpuinfo, plus physical core count."""
    fields, cores = {}, set()
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}, os.cpu_count()
    for block in text.strip().split("\n\n"):
        entry = dict(line.split(":", 1) for line in block.splitlines() if ":" in line)
        entry = {k.strip(): v.strip() for k, v in entry.items()}
        fields = fields or entry
        cores.add((entry.get("physical id"), entry.get("core id", entry.get("processor"))))
    return fields, len(cores) or os.cpu_count()


def cpu_peak(dtype, threads):
    """(GFLOP/s, how): what one core's convext microkernel sustains on
    cache-resident data (measured now), times the cores used. Nominal clocks
    in /proc are unreliable (turbo, VMs), so the FMA peak is measured rather
    than computed; no real kernel can beat it on this machine."""
    from convext import _C
    _, cores = cpuinfo()
    used = min(threads, cores)
    per_core = _C.microkernel_gflops(dtype)
    isa = convext.cpu_isa()
    kernel = {"bfloat16": ("bfloat16 (AMX tiles)" if isa.endswith("+amx") else
                           "bfloat16" if isa.endswith("+bf16") else "float32"),
              "float16": "float32"}.get(dtype, dtype)
    return per_core * used, (f"measured: {per_core:.1f} GFLOP/s of convext's {kernel} "
                             f"{convext.cpu_isa()} microkernel on cache-resident data per core "
                             f"x {used} cores")


def cpu_bandwidth(threads, mib=64, rounds=5):
    """(GB/s, how): the best of `rounds` copies of a `mib` MiB float32 tensor
    (read + write counted) with `threads` threads, measured now: the memory
    roofline the depthwise kernels are held to."""
    torch.set_num_threads(threads)
    src = torch.ones(mib * 2**18)
    dst = torch.empty_like(src)
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        dst.copy_(src)
        best = min(best, time.perf_counter() - start)
    gbs = 2 * src.numel() * 4 / best / 1e9
    return gbs, f"measured: best of {rounds} copies of {mib} MiB (read + write), {threads} threads"


def gpu_peak(dtype, name, tf32=False):
    """tf32: float32 convs may run on TF32 tensor cores, so their peak is the
    TF32 rate (a kernel that stays on full float32 shows a low %)."""
    key_dtype = "tf32" if dtype == "float32" and tf32 else dtype
    for key, label, table in GPU_PEAK_TFLOPS:
        if key in name and key_dtype in table:
            kind = {"float32": "CUDA-core FP32 (no TF32)", "float64": "FP64 non-tensor",
                    "tf32": "TF32 tensor-core"}.get(key_dtype, "dense tensor-core")
            return table[key_dtype] * 1e3, f"{label} datasheet, {kind}, no sparsity"
    return None, f"no peak table entry for {name!r} {key_dtype}; pass --peak-gflops"


def peak_gflops(device, dtype, threads, override=None, tf32=False):
    if override:
        return override, "--peak-gflops"
    if device == "cuda":
        return gpu_peak(dtype, torch.cuda.get_device_name(), tf32)
    return cpu_peak(dtype, threads)


def git_state():
    """The checkout's commit and whether it has local changes (None, None for
    an installed convext)."""
    if ROOT is None:
        return {"commit": None, "dirty": None}
    commit = _run(["git", "-C", str(ROOT), "rev-parse", "HEAD"])
    # Result files written by earlier runs don't make the code dirty.
    status = _run(["git", "-C", str(ROOT), "status", "--porcelain", "--", ".",
                   ":!benchmarks/results", ":!benchmarks/runs"])
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def _gpu():
    props = torch.cuda.get_device_properties(0)
    driver = _run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"])
    return {"name": props.name, "capability": f"{props.major}.{props.minor}",
            "memory_gib": round(props.total_memory / 2**30, 1),
            "multiprocessors": props.multi_processor_count,
            "driver": driver.splitlines()[0] if driver else None,
            "cuda_runtime": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version()}


def _cpu():
    fields, cores = cpuinfo()
    flags = set(fields.get("flags", "").split())
    return {"model": fields.get("model name") or platform.processor() or platform.machine(),
            "vendor": fields.get("vendor_id"), "family": fields.get("cpu family"),
            "model_id": fields.get("model"), "physical_cores": cores,
            "logical_cpus": os.cpu_count(),
            "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
            else os.cpu_count(),
            "isa_flags": sorted(flags & {"avx2", "fma", "avx512f", "avx512_bf16",
                                         "avx512_fp16", "amx_bf16", "amx_tile"}),
            "hypervisor": "hypervisor" in flags}


def load_average():
    """1-minute load average: how busy the machine was (other tenants add noise)."""
    return round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None


def describe(device, threads):
    """Everything needed to interpret or reproduce a run, without the host name."""
    cpu = _cpu()
    meta = {
        "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "argv": sys.argv[:],  # the process's; settings.argv has the benchmark's own
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "convext": convext.__version__,
        "convext_cpu_isa": convext.cpu_isa(),
        "convext_with_cuda": bool(convext.with_cuda()),
        "device": device,
        "cpu": cpu,
        "threads": threads,
        "interop_threads": torch.get_num_interop_threads(),
        "env": {k: os.environ[k] for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS",
                                           "CUDA_VISIBLE_DEVICES") if k in os.environ},
        "git": git_state(),
    }
    if device == "cuda":
        meta["gpu"] = _gpu()
    where = meta["gpu"]["name"] if device == "cuda" else (
        f"{cpu['model']} ({cpu['physical_cores']} cores, torch threads {threads}, "
        f"convext ISA {meta['convext_cpu_isa']})")
    meta["machine"] = f"{where}; {platform.system()} {platform.machine()}" + (
        ", virtualized" if cpu["hypervisor"] else "")
    return meta


def device_tag(meta):
    """File-name tag for a machine: e.g. cpu-amd-epyc-avx512-2t, cuda-nvidia-h100-80gb-hbm3."""
    if meta["device"] == "cuda":
        tag = "cuda-" + meta["gpu"]["name"]
    else:
        tag = f"cpu-{meta['cpu']['model']}-{meta['convext_cpu_isa']}-{meta['threads']}t"
    return re.sub(r"[^a-z0-9]+", "-", tag.lower()).strip("-")
