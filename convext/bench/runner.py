"""The benchmark's command line: picks device, shapes, dtypes and layouts,
runs every row (checked, then timed interleaved), prints the tables and
writes <device-tag>.json / .md (and .png with --plot) under --out."""
import argparse
import dataclasses
import shlex
import sys
import time
from pathlib import Path

import torch

import convext

from . import cases, correctness, machine, models, plot, report, suites, tf32
from .progress import Progress

DTYPES = {"float32": torch.float32, "fp32": torch.float32, "float64": torch.float64,
          "fp64": torch.float64, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
          "float16": torch.float16, "fp16": torch.float16, "half": torch.float16}
DEFAULT_DTYPES = {"cpu": "float32", "cuda": "float32,bfloat16,float16"}
DEFAULT_LAYOUTS = {"cpu": "nchw", "cuda": "nchw,channels_last"}
# Per device: (min_run_time s per side per direction, min rounds, block s, warm-up s).
TIMING = {"cpu": (0.3, 5, 0.02, 0.05), "cuda": (0.2, 7, 0.005, 0.1)}
QUICK_TIMING = (0.05, 3, 0.01, 0.02)
BWD_METHOD = ("torch.autograd.grad of a retained graph (input, weight and bias grads, "
              "no .grad accumulation); fwd runs under no_grad; fwd+bwd runs both")


def default_out():
    """benchmarks/runs (git-ignored) when convext runs from its checkout;
    ./convext-bench-runs for an installed convext."""
    if machine.ROOT is not None:
        return machine.ROOT / "benchmarks" / "runs"
    return Path("convext-bench-runs")


def parser():
    p = argparse.ArgumentParser(
        prog="python -m convext.bench",
        description="Benchmark convext's conv1d/conv2d and conv_transpose1d/2d against torch's "
                    "native convolution (oneDNN on CPU, cuDNN on GPU) on shapes from real "
                    "networks.")
    p.add_argument("--suite", help="comma list of suites: " + ", ".join(suites.PUBLIC_SUITES)
                   + " (default: default, or quick with --quick)")
    p.add_argument("--shapes", help="keep only shapes whose name matches one of these "
                   "comma-separated shell patterns, e.g. 'resnet50.*,mamba*'")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                   help="auto: cuda if available and convext was built with CUDA, else cpu")
    p.add_argument("--dtypes", help="comma list of float32,bfloat16,float16,float64 "
                   "(default: float32 on cpu; float32,bfloat16,float16 on cuda)")
    p.add_argument("--directions", default="fwd,bwd,fwdbwd",
                   help="comma list of fwd,bwd,fwdbwd (default: all three)")
    p.add_argument("--layouts", help="comma list of nchw,channels_last "
                   "(default: nchw on cpu; both on cuda)")
    p.add_argument("--channels-last", action="store_true",
                   help="shorthand for --layouts channels_last (2D tensors only)")
    p.add_argument("--threads", type=int, default=torch.get_num_threads(),
                   help="torch threads for both sides (default: %(default)s)")
    p.add_argument("--batch", type=int, help="override every shape's batch size")
    p.add_argument("--quick", action="store_true",
                   help="a few small shapes, short timing: under a minute on CPU")
    p.add_argument("--models", action="store_true",
                   help="also run the model-level benchmark (ResNet-18, wav2vec2 "
                        "feature extractor, WaveNet, HiFi-GAN generator): training step and "
                        "inference")
    p.add_argument("--out", type=Path, default=default_out(),
                   help="folder for <device-tag>.json/.md/.png (default: %(default)s: "
                        "benchmarks/runs in a checkout, else ./convext-bench-runs); "
                        "the repository's benchmarks/results holds the committed ones")
    p.add_argument("--plot", action="store_true",
                   help="also write <device-tag>.png (needs matplotlib)")
    p.add_argument("--tf32", action=argparse.BooleanOptionalAction, default=True,
                   help="float32 convs may use TF32 on GPU, the same torch setting for both "
                        "sides (torch.backends.cudnn.allow_tf32, which convext follows too); "
                        "default on, as F.conv2d; --no-tf32: full float32 on both sides "
                        "(its files get a -no-tf32 tag). No effect on CPU")
    p.add_argument("--no-cudnn-benchmark", action="store_true",
                   help="leave torch.backends.cudnn.benchmark off (default on: cuDNN autotunes)")
    p.add_argument("--peak-gflops", type=float,
                   help="machine peak GFLOP/s for the %% peak column (default: estimated)")
    p.add_argument("--min-run-time", type=float, help="seconds per side per direction")
    p.add_argument("--min-rounds", type=int, help="interleaved rounds at least")
    p.add_argument("--no-progress", action="store_true", help="no progress on stderr")
    # Tests: the smallest model inputs ('tiny'), independent of the suite.
    p.add_argument("--model-size", choices=["full", "quick", "tiny"], help=argparse.SUPPRESS)
    return p


def _csv(value, allowed, what):
    items = [v.strip() for v in value.split(",") if v.strip()]
    bad = [v for v in items if v not in allowed]
    if bad or not items:
        raise SystemExit(f"convext.bench: unknown {what} {bad or value!r}; "
                         f"choose from {', '.join(allowed)}")
    return items


def _device(choice):
    cuda_ok = torch.cuda.is_available() and convext.with_cuda()
    if choice == "cuda" and not cuda_ok:
        raise SystemExit("convext.bench: --device cuda needs a GPU and convext built with "
                         f"CUDA (torch.cuda.is_available()={torch.cuda.is_available()}, "
                         f"convext.with_cuda()={convext.with_cuda()})")
    return "cuda" if choice == "cuda" or (choice == "auto" and cuda_ok) else "cpu"


def _backend_flags(device, args):
    """Set TF32/cuDNN flags for both sides and return the TF32 record."""
    torch.backends.cudnn.benchmark = device == "cuda" and not args.no_cudnn_benchmark
    return tf32.apply(args.tf32, device)


def _wanted(dims, layout, layouts):
    """1D tensors have no channels_last: run them once, under nchw if it is measured."""
    return dims == 2 or layout == "nchw" or "nchw" not in layouts


def _report_row(progress, row, what):
    if row["error"]:
        progress.warn(f"!! ERROR {what}: {row['error']}")
    elif not row["check"]["ok"]:
        progress.warn(f"!! MISMATCH {what}: convext differs from native beyond tol "
                      f"{row['check']['tol']:g}: {row['check']['errors']}")


def _plan(args, device, tf32_on=False):
    """What to run: the settings that go into the JSON, plus the shapes.
    tf32_on: float32 convs may use TF32 (GPU with the flag on): the fp32
    peak and tolerance follow it."""
    dtypes = [str(DTYPES[d]).replace("torch.", "")
              for d in _csv(args.dtypes or DEFAULT_DTYPES[device], DTYPES, "dtype")]
    layouts = ["channels_last"] if args.channels_last else _csv(
        args.layouts or DEFAULT_LAYOUTS[device], ["nchw", "channels_last"], "layout")
    suite = args.suite or ("quick" if args.quick else "default")
    try:
        shapes = suites.select(suite, args.shapes)
    except ValueError as err:
        raise SystemExit(f"convext.bench: {err}") from None
    if args.batch:
        shapes = [dataclasses.replace(s, batch={"cpu": args.batch, "cuda": args.batch})
                  for s in shapes]
    run_time, rounds, block, warmup = QUICK_TIMING if args.quick else TIMING[device]
    timing_opts = {"min_run_time": run_time if args.min_run_time is None else args.min_run_time,
                   "min_rounds": args.min_rounds or rounds, "block_s": block,
                   "warmup_s": warmup}
    peaks = {d: machine.peak_gflops(device, d, args.threads, args.peak_gflops, tf32_on)
             for d in dtypes}
    settings = {
        "suite": suite, "dtypes": dtypes, "layouts": layouts,
        "directions": _csv(args.directions, cases.DIRECTIONS, "direction"),
        "timing": timing_opts,
        "model_size": (args.model_size or ("quick" if args.quick else "full"))
        if args.models else None,
        "bwd_method": BWD_METHOD,
        "flops": "fwd = 2*N*OC*prod(out)*Cin/groups*prod(kernel) (bias not counted); "
                 "bwd = 2x fwd (grad_input + grad_weight); fwd+bwd = 3x fwd",
        "peak": {d: {"gflops": g, "how": how} for d, (g, how) in peaks.items()},
        "bandwidth": dict(zip(("gbs", "how"), machine.cpu_bandwidth(args.threads)))
        if device == "cpu" else None,
        "tolerance": {d: correctness.tolerance(DTYPES[d], tf32_on) for d in dtypes},
    }
    return settings, shapes


def _measure(settings, shapes, device, args):
    """Every shape row, then every model row, with progress and loud failures."""
    dtypes, layouts = settings["dtypes"], settings["layouts"]
    plan = [(s, d, l) for d in dtypes for l in layouts for s in shapes
            if _wanted(s.dims, l, layouts)]
    model_plan = [(c, d, l) for d in dtypes for l in layouts for c in models.MODELS
                  if _wanted(c.dims, l, layouts)] if args.models else []
    progress = Progress(len(plan) + len(model_plan), enabled=not args.no_progress)
    timing_opts = settings["timing"]
    rows, model_rows = [], []
    for shape, dtype, layout in plan:
        what = f"{shape.name} {dtype} {layout}"
        progress.step(what)
        rows.append(cases.bench_shape(
            shape, DTYPES[dtype], device, layout, settings["directions"], args.threads,
            timing_opts, settings["peak"][dtype]["gflops"], settings["tolerance"][dtype],
            (settings.get("bandwidth") or {}).get("gbs")))
        _report_row(progress, rows[-1], what)
    for case, dtype, layout in model_plan:
        what = f"model {case.name} {dtype} {layout}"
        progress.step(what)
        model_rows.append(models.bench_model(case, settings["model_size"], DTYPES[dtype], device,
                                             layout, args.threads, timing_opts,
                                             settings["tolerance"][dtype]))
        _report_row(progress, model_rows[-1], what)
    progress.close()
    return rows, model_rows


def run(args):
    """Run everything `args` asks for; returns the result dict (the JSON)."""
    start, load_start = time.perf_counter(), machine.load_average()
    device = _device(args.device)
    torch.set_num_threads(args.threads)
    tf32_record = _backend_flags(device, args)
    settings, shapes = _plan(args, device, tf32_record["in_effect"])
    rows, model_rows = _measure(settings, shapes, device, args)

    argv = args.argv if hasattr(args, "argv") else sys.argv[1:]
    meta = machine.describe(device, args.threads)
    meta["load_avg"] = {"start": load_start, "end": machine.load_average()}
    settings.update(
        command="python -m convext.bench " + shlex.join(argv), argv=argv,
        args={k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()
              if k != "argv"},
        tf32=tf32_record, cudnn_benchmark=torch.backends.cudnn.benchmark)
    result = {"schema": 1, "meta": meta, "settings": settings, "rows": rows,
              "models": model_rows}
    result["summary"] = report.summary(result)
    result["wall_s"] = time.perf_counter() - start
    return result


def save(result, args):
    """Write <tag>.json and <tag>.md (and .png); return the paths."""
    args.out.mkdir(parents=True, exist_ok=True)
    tag = machine.device_tag(result["meta"]) + ("-quick" if args.quick else "") + (
        "-no-tf32" if result["settings"]["tf32"]["applies"] and not args.tf32 else "")
    paths = [args.out / f"{tag}.json", args.out / f"{tag}.md"]
    report.write_json(result, paths[0])
    paths[1].write_text(report.markdown(result))
    if args.plot:
        if plot.available():
            paths.append(args.out / f"{tag}.png")
            plot.plot(result, paths[-1])
        else:
            print("--plot: matplotlib is not installed (pip install matplotlib); no PNG written",
                  file=sys.stderr)
    return paths


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser().parse_args(argv)
    args.argv = argv
    result = run(args)
    print("\n".join(report.settings_lines(result)))
    print(report.text(result), end="")
    for path in save(result, args):
        print(f"wrote {path}")
    failed = [r for r in result["rows"] + result["models"]
              if r["error"] or not r["check"]["ok"]]
    if failed:
        print(f"!! {len(failed)} row(s) failed the correctness gate or raised: see the rows "
              "marked !!", file=sys.stderr)
    return 1 if failed else 0
