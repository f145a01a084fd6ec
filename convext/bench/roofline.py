"""Roofline model of the benchmark's shapes on an H100 SXM: MODELLED, not
measured. For every suite shape (at its GPU batch), dtype and direction it
gives the FLOPs, the minimum bytes moved, the ideal time, and a modelled time
for convext and for a cuDNN-class kernel under the efficiency assumptions
below, so GPU timings can be compared with an expectation the day they exist.

    python -m convext.bench.roofline --out benchmarks/results/roofline-h100.md

Work per kernel. A direction is one kernel (fwd) or two (bwd = grad_input +
grad_weight; fwd+bwd = all three). Each kernel does the forward's FLOPs
(suites.Shape.flops_fwd: one multiply-add per weight tap per output) and moves
at least input + weight + output once each in the dtype: fwd reads x and w
and writes y; grad_input reads dy and w and writes dx; grad_weight reads x
and dy and writes dw (grad_bias, a sum over dy, is taken as fused into that
pass). A transposed conv is the grad_input of the conv it inverts, so it has
the same three kernels in another order.

Ideal time of a kernel: max(FLOPs / peak, bytes / HBM bandwidth) with the
dtype's best peak (bf16/fp16 and TF32 on tensor cores, full fp32 on CUDA
cores); "bound" says which term is larger (over the direction's kernels).

Modelled time: max(FLOPs / (peak x compute efficiency), bytes / (bandwidth x
memory efficiency)) per kernel, summed over the direction's kernels.

Which convext path a shape takes (the tensor-core kernels of issue 8, for
all three kernels; channels_last, NCHW at the cost of a copy, see README):
  tensor-core  channels per group (C/G and OC/G) multiples of one 16-byte
               vector (8 for bf16/fp16, 4 for float32 with TF32 allowed):
               64x64x32 block tiles of 4 warps (32x32 warp tiles; the larger
               tiles convext also picks are not modelled), a 3-stage
               cp.async pipeline, ldmatrix, mma.sync (m16n8k16, TF32 m16n8k8).
               Grouped convs as one GEMM per group. 1D dense convs as H = 1.
  depthwise    groups == C: the bandwidth kernels (CUDA cores).
  SIMT         everything else: channels per group not a multiple of the
               vector (ResNet stem C=3, wav2vec2 conv0 C=1, ResNeXt's
               4-channel groups in bf16/fp16), float32 with TF32 off.

Efficiency assumptions (the model's only free parameters, all stated here):
- convext tensor-core kernels: 0.40 of the dense peak, times the tile fill
  (M, N padded to 64 and K to 32: useful / computed MACs). Why 0.40: with
  32x32 warp tiles a k16 step reads 2 KB of shared memory by ldmatrix for
  32 KFLOP (16 FLOP/B; TF32's k8 step: 8 FLOP/B at half the peak, the same
  ratio). An H100 SM reads 128 B/clk of shared memory and its tensor cores
  do 4096 dense fp16 FLOP/clk (989 TFLOP/s = 132 SMs x 1.83 GHz x 4096), so
  ldmatrix bandwidth caps these tiles at 50% of peak; mma.sync on Hopper
  also issues below the wgmma rate. Pipeline fill and drain per tile, the
  epilogue and address arithmetic take about a fifth of that: 0.8 x 0.5.
  That is the low end of the 40-60% that mma.sync kernels reach on H100;
  128x128 tiles (64x64 warp tiles, 32 FLOP/B) would lift the cap.
- convext SIMT kernels: 0.30 of the CUDA-core FP32 peak (67 TFLOP/s; half
  types are converted to float32 and multiplied with FFMA). The issue's
  measurement: FFMA is 25-40% of the instructions the main loops issue.
- convext depthwise: 0.50 of the CUDA-core peak for its FLOPs
  (register-blocked outputs, several per thread, KH/KW fixed at compile
  time); they are bandwidth-bound anyway.
- convext memory efficiency: 0.75 of HBM bandwidth (vectorised 16-byte
  loads; halos and the 64-wide tiles re-read part of the input and weight,
  mostly from L2; split-K partial sums).
- cuDNN-class kernels: 0.70 of the same peak (wgmma kernels reach about
  60-75% on H100), with C/groups and OC/groups padded to multiples of 8 on
  tensor cores (grouped and 3-channel convs waste that fraction), and 0.80
  of HBM bandwidth. cuDNN picks its tile per problem, so no tile fill.
Not modelled: layout conversions (both sides in channels_last, convext's
native fast layout; NCHW costs a transpose on tensor-core paths), launch
overhead (a few microseconds: it dominates the smallest rows), wave
quantisation (split-K fills the GPU for small grids), L2 residency, clocks
below boost.

Hook: DEPTHWISE_BYTES may be set to a function (shape, batch, elem_bytes,
kernel) -> bytes giving the depthwise kernels' modelled traffic (e.g. with
halo re-reads); by default the minimum bytes are used for them too.
"""
import argparse
import math
import sys
from dataclasses import dataclass
from pathlib import Path

from . import machine, suites

TFLOP = 1e12


@dataclass(frozen=True)
class Gpu:
    name: str
    tensor_peak: dict   # compute mode -> dense FLOP/s on tensor cores
    simt_peak: float    # CUDA-core FP32 FLOP/s
    bandwidth: float    # HBM bytes/s


def _datasheet(label, bandwidth):
    """A GPU of machine.GPU_PEAK_TFLOPS (the benchmark's % peak table)."""
    peaks = next(t for _, name, t in machine.GPU_PEAK_TFLOPS if name == label)
    return Gpu(label, {"half": peaks["bfloat16"] * TFLOP, "tf32": peaks["tf32"] * TFLOP},
               peaks["float32"] * TFLOP, bandwidth)


H100_SXM = _datasheet("H100 SXM", 3.35e12)  # HBM3: 3.35 TB/s

# Modelled dtypes: label -> (element bytes, compute mode). bf16 and fp16 have
# the same peak and size, so one row stands for both. "ieee" is float32 with
# TF32 off (--no-tf32): CUDA cores only.
DTYPES = {"bf16/fp16": (2, "half"), "fp32 (TF32)": (4, "tf32"), "fp32 (no TF32)": (4, "ieee")}
DIRECTIONS = {"fwd": ("forward",), "bwd": ("grad_input", "grad_weight"),
              "fwd+bwd": ("forward", "grad_input", "grad_weight")}

# Efficiency assumptions (see the module docstring for the reasoning).
CONVEXT_TENSOR = 0.40
CONVEXT_SIMT = 0.30
CONVEXT_DEPTHWISE = 0.50
CONVEXT_MEMORY = 0.75
CUDNN_COMPUTE = 0.70
CUDNN_MEMORY = 0.80
TILE = (64, 64, 32)  # convext's tensor-core block tile: M, N, K

# Set by a depthwise traffic model (see the docstring); None: minimum bytes.
DEPTHWISE_BYTES = None


def _ceil_to(x, m):
    return -(-x // m) * m


def is_depthwise(shape):
    """One input channel per group, several groups (ConvShape::depthwise)."""
    in_ch = shape.cout if shape.transposed else shape.cin  # the conv's input channels
    return shape.groups > 1 and in_ch // shape.groups == 1


def convext_path(shape, mode):
    """'depthwise', 'tensor-core' or 'SIMT' (see the module docstring)."""
    if is_depthwise(shape):
        return "depthwise"
    vec = 4 if mode == "tf32" else 8  # elements in one 16-byte cp.async chunk
    c, oc = shape.cin // shape.groups, shape.cout // shape.groups
    if mode != "ieee" and c % vec == 0 and oc % vec == 0:
        return "tensor-core"
    return "SIMT"


def elements(shape, batch):
    """(input, weight, output) element counts."""
    return (batch * shape.cin * math.prod(shape.size), math.prod(shape.weight_shape()),
            batch * shape.cout * math.prod(shape.out_size()))


def min_bytes(shape, batch, elem_bytes):
    """Input + weight + output once each: every one of the three kernels
    touches exactly these three tensors (or their gradients)."""
    return sum(elements(shape, batch)) * elem_bytes


def gemm_dims(shape, batch, kernel):
    """(M, N, K) of one group's implicit GEMM for a kernel, in terms of the
    conv the shape runs (a transposed shape's forward is its inverse conv's
    grad_input, and the reverse)."""
    g = shape.groups
    small, big = shape.cin, shape.cout  # conv: x has cin channels, y cout
    p_x, p_y = math.prod(shape.size), math.prod(shape.out_size())
    taps, phases = math.prod(shape.kernel), math.prod(shape.stride)
    if shape.transposed:
        # As the conv from y (cout channels, p_y) to x (cin channels, p_x).
        kernel = {"forward": "grad_input", "grad_input": "forward"}.get(kernel, kernel)
        small, big, p_x, p_y = shape.cout, shape.cin, p_y, p_x
    if kernel == "forward":
        return batch * p_y, big // g, small // g * taps
    if kernel == "grad_input":  # stride phases: about taps/phases taps each
        return batch * p_x, small // g, max(big // g * taps // phases, 1)
    return big // g, small // g * taps, batch * p_y  # grad_weight


def tile_fill(m, n, k, tile=TILE):
    """Useful MACs / MACs computed when M, N, K are padded to the tile."""
    return m * n * k / (_ceil_to(m, tile[0]) * _ceil_to(n, tile[1]) * _ceil_to(k, tile[2]))


def _channel_fill(shape):
    """cuDNN on tensor cores pads channels per group to multiples of 8."""
    c, oc = shape.cin // shape.groups, shape.cout // shape.groups
    return c / _ceil_to(c, 8) * oc / _ceil_to(oc, 8)


def model_kernel(shape, batch, dtype, kernel, gpu=H100_SXM):
    """One kernel: dict of flops, bytes and the ideal / convext / cuDNN times (s)."""
    elem_bytes, mode = DTYPES[dtype]
    flops = shape.flops_fwd(batch)
    nbytes = min_bytes(shape, batch, elem_bytes)
    best = gpu.simt_peak if mode == "ieee" else gpu.tensor_peak[mode]
    path = convext_path(shape, mode)
    cx_bytes = nbytes
    if path == "depthwise":
        cx_peak = gpu.simt_peak * CONVEXT_DEPTHWISE
        if DEPTHWISE_BYTES is not None:
            cx_bytes = DEPTHWISE_BYTES(shape, batch, elem_bytes, kernel)
    elif path == "tensor-core":
        cx_peak = best * CONVEXT_TENSOR * tile_fill(*gemm_dims(shape, batch, kernel))
    else:
        cx_peak = gpu.simt_peak * CONVEXT_SIMT
    if is_depthwise(shape) or mode == "ieee":
        cudnn_peak = gpu.simt_peak * CUDNN_COMPUTE
    else:
        cudnn_peak = best * CUDNN_COMPUTE * _channel_fill(shape)
    return {
        "flops": flops, "bytes": nbytes, "path": path,
        "compute_s": flops / best, "memory_s": nbytes / gpu.bandwidth,
        "ideal_s": max(flops / best, nbytes / gpu.bandwidth),
        "convext_s": max(flops / cx_peak, cx_bytes / (gpu.bandwidth * CONVEXT_MEMORY)),
        "cudnn_s": max(flops / cudnn_peak, nbytes / (gpu.bandwidth * CUDNN_MEMORY)),
    }


def model_row(shape, dtype, direction, gpu=H100_SXM):
    """One table row: a shape in a dtype and direction (sum of its kernels)."""
    batch = shape.batch_for("cuda")
    kernels = [model_kernel(shape, batch, dtype, k, gpu) for k in DIRECTIONS[direction]]
    total = {key: sum(k[key] for k in kernels) for key in
             ("flops", "bytes", "compute_s", "memory_s", "ideal_s", "convext_s", "cudnn_s")}
    return {"shape": shape.name, "desc": shape.describe(), "batch": batch, "dtype": dtype,
            "direction": direction, "path": kernels[0]["path"],
            "bound": "compute" if total["compute_s"] > total["memory_s"] else "memory",
            "ratio": total["convext_s"] / total["cudnn_s"], **total}


def family(shape_name):
    """The suite a shape belongs to (depthwise 1D counts as depthwise)."""
    if shape_name.startswith("mamba."):
        return "depthwise"
    for name in ("resnet50", "resnext", "depthwise", "dilated", "conv1d", "transposed"):
        if any(s.name == shape_name for s in suites.SUITES[name]):
            return name
    return "other"


def rows(shapes, gpu=H100_SXM):
    return [model_row(s, d, direction, gpu) for s in shapes for d in DTYPES
            for direction in DIRECTIONS]


def _geomean(values):
    return math.exp(sum(map(math.log, values)) / len(values))


def headline(table, direction="fwd+bwd"):
    """Per shape family and dtype: shape count, summed ideal / convext / cuDNN
    ms and the geomean convext/cuDNN ratio, for one direction."""
    out = {}
    for r in table:
        if r["direction"] == direction:
            out.setdefault((family(r["shape"]), r["dtype"]), []).append(r)
    return [{"family": fam, "dtype": dtype, "n": len(rs),
             "ideal_ms": 1e3 * sum(r["ideal_s"] for r in rs),
             "convext_ms": 1e3 * sum(r["convext_s"] for r in rs),
             "cudnn_ms": 1e3 * sum(r["cudnn_s"] for r in rs),
             "ratio": _geomean([r["ratio"] for r in rs]),
             "bound": "/".join(sorted({r["bound"] for r in rs}))}
            for (fam, dtype), rs in out.items()]


def _ms(s):
    return f"{s * 1e3:.4f}" if s < 1e-3 else f"{s * 1e3:.3f}"


def markdown(table, gpu=H100_SXM, command=None):
    out = [f"# Roofline model, {gpu.name}: MODELLED, not measured", "",
           "Every number here is computed from the shapes and the assumptions of "
           "[`convext/bench/roofline.py`](../../convext/bench/roofline.py) (read its docstring); "
           "nothing was timed. Real numbers: `bash benchmarks/gpu/run.sh` on a GPU.", "",
           f"- command: `{command or 'python -m convext.bench.roofline'}`",
           f"- {gpu.name}: dense bf16/fp16 {gpu.tensor_peak['half'] / TFLOP:.0f} TFLOP/s, "
           f"TF32 {gpu.tensor_peak['tf32'] / TFLOP:.0f}, FP32 CUDA cores "
           f"{gpu.simt_peak / TFLOP:.0f}; HBM {gpu.bandwidth / 1e12:.2f} TB/s",
           f"- convext efficiency: tensor-core {CONVEXT_TENSOR:.2f} of peak x tile fill "
           f"({'x'.join(map(str, TILE))} tiles), SIMT {CONVEXT_SIMT:.2f} of the FP32 peak, "
           f"depthwise compute {CONVEXT_DEPTHWISE:.2f}, memory {CONVEXT_MEMORY:.2f} of HBM",
           f"- cuDNN-class efficiency: {CUDNN_COMPUTE:.2f} of peak (channels per group padded "
           f"to 8 on tensor cores), memory {CUDNN_MEMORY:.2f} of HBM",
           "- bytes: input + weight + output once each per kernel, in the dtype; bwd = "
           "grad_input + grad_weight, fwd+bwd = all three kernels; batch = the suite's GPU "
           "batch; bf16/fp16 rows stand for both dtypes; launch overhead not included",
           "- ideal = max(FLOPs/peak, bytes/bandwidth) per kernel; bound = the larger term",
           "", "## Headline: fwd+bwd per shape family (MODELLED)", "",
           "| family | dtype | shapes | bound | ideal ms | modelled convext ms | "
           "modelled cuDNN ms | modelled convext/cuDNN (geomean) |",
           "|---|---|---:|---|---:|---:|---:|---:|"]
    for h in headline(table):
        out.append(f"| {h['family']} | {h['dtype']} | {h['n']} | {h['bound']} | "
                   f"{h['ideal_ms']:.3f} | {h['convext_ms']:.3f} | {h['cudnn_ms']:.3f} | "
                   f"{h['ratio']:.2f}x |")
    out += ["", "## Every shape, dtype and direction (MODELLED, not measured)", "",
            "| shape | N | dtype | direction | GFLOP | MB | bound | ideal ms | convext path | "
            "modelled convext ms | modelled convext/cuDNN |",
            "|---|---:|---|---|---:|---:|---|---:|---|---:|---:|"]
    for r in table:
        out.append(f"| {r['shape']} | {r['batch']} | {r['dtype']} | {r['direction']} | "
                   f"{r['flops'] / 1e9:.2f} | {r['bytes'] / 1e6:.1f} | {r['bound']} | "
                   f"{_ms(r['ideal_s'])} | {r['path']} | {_ms(r['convext_s'])} | "
                   f"{r['ratio']:.2f}x |")
    return "\n".join(out) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(
        prog="python -m convext.bench.roofline",
        description="Roofline model (MODELLED, not measured) of the benchmark shapes on an "
                    "H100 SXM: FLOPs, minimum bytes, ideal and modelled convext/cuDNN times.")
    p.add_argument("--suite", default="all", help="suites as for convext.bench (default: all)")
    p.add_argument("--out", type=Path, help="write the Markdown here (default: print it)")
    args = p.parse_args(argv)
    try:
        shapes = suites.select(args.suite)
    except ValueError as err:
        raise SystemExit(f"convext.bench.roofline: {err}") from None
    command = "python -m convext.bench.roofline" + (
        f" --suite {args.suite}" if args.suite != "all" else "") + (
        f" --out {args.out}" if args.out else "")
    text = markdown(rows(shapes), command=command)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
        print(f"wrote {args.out}")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
