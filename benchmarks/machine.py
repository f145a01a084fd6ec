"""What machine and software a run measured: metadata for the JSON/Markdown,
a hostname-free device tag for file names, and the peak FLOP/s estimate."""
import datetime
import os
import platform
import re
import subprocess
import sys
from pathlib import Path

import torch

import convext

ROOT = Path(__file__).resolve().parents[1]

# Dense (no sparsity) peak TFLOP/s. fp32 is the CUDA-core rate (convext does
# not use TF32); fp16/bf16 are tensor-core rates; fp64 is the non-tensor rate.
# From NVIDIA's H100/H200 datasheets. First matching name wins.
GPU_PEAK_TFLOPS = [
    ("H200 NVL", "H200 NVL", {"float64": 30, "float32": 60, "bfloat16": 835, "float16": 835}),
    ("H200", "H200 SXM", {"float64": 34, "float32": 67, "bfloat16": 989, "float16": 989}),
    ("H100 NVL", "H100 NVL", {"float64": 30, "float32": 60, "bfloat16": 835, "float16": 835}),
    ("H100 PCIe", "H100 PCIe", {"float64": 26, "float32": 51, "bfloat16": 756, "float16": 756}),
    ("H100", "H100 SXM", {"float64": 34, "float32": 67, "bfloat16": 989, "float16": 989}),
]

_FMA_PIPES = 2  # FMA units per core assumed for x86 server cores (Skylake-SP+, Zen)
_LANE_BITS = {"avx512": 512, "avx2": 256, "generic": 128}


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


def _cpu_ghz(fields):
    """(GHz, how it was found): max frequency if the OS exposes it, else the
    rated frequency in the model name, else the current or TSC frequency."""
    try:
        khz = Path("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq").read_text()
        return int(khz) / 1e6, "cpufreq cpuinfo_max_freq"
    except (OSError, ValueError):
        pass
    rated = re.search(r"@\s*([\d.]+)\s*GHz", fields.get("model name", ""))
    if rated:
        return float(rated.group(1)), "rated GHz in the CPU model name"
    if "cpu MHz" in fields:
        return float(fields["cpu MHz"]) / 1e3, "current 'cpu MHz' in /proc/cpuinfo"
    if "bogomips" in fields:  # x86 bogomips = 2 x TSC MHz
        return float(fields["bogomips"]) / 2e3, "bogomips/2 (TSC frequency) in /proc/cpuinfo"
    return None, "unknown"


def cpu_peak(dtype, threads):
    """(GFLOP/s or None, how): cores x GHz x FMA pipes x lanes x 2 for fp32,
    half that for fp64. Lanes follow the ISA convext dispatches to; AMD Zen 4
    (family 25 with AVX-512) runs 512-bit ops on 256-bit pipes, so it counts 256.
    bf16/fp16 get the fp32 rate: convext computes them in fp32 on the CPU."""
    fields, cores = cpuinfo()
    isa = convext.cpu_isa()
    bits = _LANE_BITS.get(isa, 128)
    amd_zen4 = fields.get("vendor_id") == "AuthenticAMD" and fields.get("cpu family") == "25"
    if isa == "avx512" and amd_zen4:
        bits = 256
    ghz, source = _cpu_ghz(fields)
    per_elem = {"float32": 32, "float64": 64, "bfloat16": 32, "float16": 32}.get(dtype)
    if ghz is None or per_elem is None:
        return None, f"no CPU peak estimate for {dtype}; pass --peak-gflops"
    used = min(threads, cores)
    lanes = bits // per_elem
    peak = used * ghz * _FMA_PIPES * lanes * 2
    lane_type = "float64" if dtype == "float64" else "float32"
    return peak, (f"{used} cores x {ghz:.2f} GHz ({source}) x {_FMA_PIPES} FMA pipes x "
                  f"{lanes} {lane_type} lanes ({bits}-bit {isa}) x 2 flop/FMA"
                  + ("; computed in fp32" if lane_type != dtype else ""))


def gpu_peak(dtype, name):
    for key, label, table in GPU_PEAK_TFLOPS:
        if key in name and dtype in table:
            kind = {"float32": "CUDA-core FP32 (no TF32)", "float64": "FP64 non-tensor"}.get(
                dtype, "dense tensor-core")
            return table[dtype] * 1e3, f"{label} datasheet, {kind}, no sparsity"
    return None, f"no peak table entry for {name!r} {dtype}; pass --peak-gflops"


def peak_gflops(device, dtype, threads, override=None):
    if override:
        return override, "--peak-gflops"
    if device == "cuda":
        return gpu_peak(dtype, torch.cuda.get_device_name())
    return cpu_peak(dtype, threads)


def git_state():
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
