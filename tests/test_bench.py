"""The benchmark (convext.bench, shipped in the package) runs end to end in its
smallest form, from any directory, and writes what it promises. It never
asserts a speed: only that numbers are there."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import convext
from convext.bench import cases, correctness, machine, models, report, runner, suites
from convext.bench import tf32 as bench_tf32

ROOT = Path(__file__).resolve().parents[1]
# One thread, one round, no minimum time: seconds even on a busy 2-core machine.
FAST = ["--quick", "--suite", "tiny", "--threads", "1", "--min-run-time", "0",
        "--min-rounds", "1", "--no-progress", "--device", "cpu"]


def _outputs(out_dir):
    (json_path,) = out_dir.glob("*.json")
    return json.loads(json_path.read_text()), json_path.with_suffix(".md").read_text()


def _outside_checkout(tmp_path, *args):
    """`python <args>` run in an empty directory outside the checkout, with only
    this checkout's convext importable (as if installed)."""
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_command_line_writes_table_json_and_markdown(tmp_path):
    proc = _outside_checkout(tmp_path, "-m", "convext.bench", *FAST, "--shapes", "tiny.3x3",
                             "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert "fwd ratio" in proc.stdout and "tiny.3x3" in proc.stdout
    assert "geomean convext/native" in proc.stdout

    result, md = _outputs(tmp_path)
    assert {"schema", "meta", "settings", "rows", "models", "summary", "wall_s"} <= set(result)
    meta = result["meta"]
    for key in ("torch", "convext_cpu_isa", "threads", "git", "timestamp", "argv", "cpu",
                "machine", "platform"):
        assert key in meta
    assert meta["threads"] == 1 and {"commit", "dirty"} <= set(meta["git"])
    tf32 = result["settings"]["tf32"]
    assert tf32["enabled"] and not tf32["applies"] and not tf32["in_effect"]
    assert tf32["native"] == tf32["convext"] == bench_tf32.CPU
    assert result["settings"]["tolerance"] == {"float32": 1e-4}  # CPU: TF32 changes nothing
    (row,) = result["rows"]
    assert row["shape"] == "tiny.3x3" and row["error"] is None and row["check"]["ok"]
    assert set(row["timings"]) == {"fwd", "bwd", "fwdbwd"}
    sc = row["scratch"]  # peak CPU scratch bytes per direction, against the output's
    assert sc["fwd"] > 0 and sc["bwd"] > 0 and sc["out"] == 8 * 8 * 8 * 4  # (1, 8, 8, 8) float32
    assert sc["fwd_per_out"] == sc["fwd"] / sc["out"]
    assert "scratch/out f,b" in md and "peak scratch / output bytes, worst" in md
    for t in row["timings"].values():
        for side in ("convext", "native"):
            assert {"median", "q1", "q3", "iqr", "n", "number"} <= set(t[side])
            assert t[side]["median"] > 0 and t[side]["n"] >= 1
        assert t["ratio"] > 0 and t["gflops_convext"] > 0
    assert result["summary"]["float32/nchw"]["n"] == 1
    assert "python -m convext.bench" in md and "| tiny.3x3 |" in md and "geomean" in md


def test_depthwise_rows_report_bandwidth(tmp_path):
    """The CPU run measures a copy bandwidth; depthwise rows get GB/s and % of
    it from the bytes each direction must move; other rows get none."""
    fast = [a if a != "tiny" else "quick" for a in FAST]
    proc = _outside_checkout(tmp_path, "-m", "convext.bench", *fast, "--batch", "1",
                             "--shapes", "mbv2.dw3x3.384@14,resnet50.l3.3x3",
                             "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    result, md = _outputs(tmp_path)
    bw = result["settings"]["bandwidth"]
    assert bw["gbs"] > 0 and "copies" in bw["how"]
    rows = {r["shape"]: r for r in result["rows"]}
    dw, dense = rows["mbv2.dw3x3.384@14"], rows["resnet50.l3.3x3"]
    elems = 384 * 14 * 14  # input and output of one image
    assert dw["timings"]["fwd"]["bytes"] == (2 * elems + 384 * 9) * 4
    assert dw["timings"]["bwd"]["bytes"] == (3 * elems + 2 * 384 * 9) * 4
    t = dw["timings"]["fwdbwd"]
    assert t["gbs_convext"] == pytest.approx(t["bytes"] / t["convext"]["median"] / 1e9)
    assert t["pct_bandwidth_convext"] == pytest.approx(100 * t["gbs_convext"] / bw["gbs"])
    assert all("gbs_convext" not in t for t in dense["timings"].values())
    assert "%bw" in md and "bandwidth: " in md


def test_models_in_process(tmp_path, capsys):
    code = runner.main([*FAST, "--shapes", "tiny.1d*", "--models", "--model-size", "tiny",
                        "--out", str(tmp_path)])
    assert code == 0
    result, md = _outputs(tmp_path)
    assert [r["model"] for r in result["models"]] == [c.name for c in models.MODELS]
    for row in result["models"]:
        assert row["error"] is None and row["check"]["ok"], row
        assert set(row["timings"]) == {"train", "infer"}
    assert "train ratio" in capsys.readouterr().out and "## models" in md


def test_mismatch_is_marked(monkeypatch):
    def wrong(x, w, b=None, **kw):
        return F.conv2d(x, w, b, **kw) * 1.01
    monkeypatch.setitem(cases.IMPLS["convext"], 2, wrong)
    opts = {"min_run_time": 0, "min_rounds": 1, "block_s": 0.001, "warmup_s": 0}
    row = cases.bench_shape(suites.TINY[0], torch.float32, "cpu", "nchw", ["fwd"], 1, opts, None)
    assert row["error"] is None and not row["check"]["ok"]
    assert row["check"]["errors"]["out"] > row["check"]["tol"]
    headers, table = report.shape_table([row], ["fwd"])
    assert table[0][0].startswith("!!") and table[0][-1].startswith("MISMATCH")
    assert report.geomeans([row], ["fwd"])["n"] == 0  # excluded from the geomean


@pytest.fixture
def restore_tf32():
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark = saved


@pytest.mark.parametrize("argv, enabled", [([], True), (["--tf32"], True), (["--no-tf32"], False)])
def test_tf32_flag_sets_torch_conv_setting_for_both_sides(argv, enabled, restore_tf32):
    """Default: torch's default for convs (TF32 on); --no-tf32 turns it off; the
    record says per side which mode float32 runs in, and the gate follows it."""
    args = runner.parser().parse_args(argv)
    assert args.tf32 is enabled
    rec = runner._backend_flags("cuda", args)  # sets flags only: no GPU needed
    assert torch.backends.cudnn.allow_tf32 is enabled and rec["in_effect"] is enabled
    if rec["cudnn_conv_fp32_precision"] is not None:
        assert (rec["cudnn_conv_fp32_precision"] == "tf32") is enabled  # off: "ieee"/"none"
    assert rec["native"] == (bench_tf32.NATIVE_ON if enabled else bench_tf32.NATIVE_OFF)
    assert rec["convext"] == (bench_tf32.CONVEXT_ON if enabled else bench_tf32.CONVEXT_OFF)
    line = bench_tf32.line(rec)
    assert rec["native"] in line and rec["convext"] in line
    tol = correctness.tolerance(torch.float32, rec["in_effect"])
    assert tol == (correctness.TF32_TOLERANCE if enabled else correctness.TOLERANCE[torch.float32])
    # The fp32 peak follows the mode too: TF32 tensor cores, or the CUDA-core rate.
    assert machine.gpu_peak("float32", "NVIDIA H100 80GB HBM3", rec["in_effect"])[0] == (
        494e3 if enabled else 67e3)
    assert machine.gpu_peak("bfloat16", "NVIDIA H100 80GB HBM3", rec["in_effect"])[0] == 989e3
    cpu = runner._backend_flags("cpu", args)
    assert not cpu["in_effect"] and cpu["native"] == bench_tf32.CPU


def test_no_tf32_on_cpu_runs_unchanged(tmp_path, restore_tf32):
    """On CPU --no-tf32 changes nothing: same tolerance, same file names."""
    assert runner.main([*FAST, "--shapes", "tiny.3x3", "--no-tf32", "--out", str(tmp_path)]) == 0
    result, md = _outputs(tmp_path)
    assert not result["settings"]["tf32"]["enabled"]
    assert result["settings"]["tolerance"] == {"float32": 1e-4}
    assert not any("no-tf32" in p.name for p in tmp_path.iterdir())
    assert "TF32: does not apply on CPU" in md


def test_correctness_tolerance_is_scale_free():
    x = torch.randn(1000, dtype=torch.float64) * 1e6
    assert correctness.normalized_error(x * (1 + 1e-7), x) < correctness.tolerance(torch.float32)
    assert correctness.normalized_error(x.flip(0), x) > 0.1
    assert correctness.normalized_error(x[:10], x) == float("inf")


def test_transposed_shape_row(tmp_path):
    assert runner.main([*FAST, "--shapes", "tiny.up2x2", "--out", str(tmp_path)]) == 0
    result, md = _outputs(tmp_path)
    (row,) = result["rows"]
    assert row["error"] is None and row["check"]["ok"] and row["desc"].startswith("transposed")
    assert set(row["timings"]) == {"fwd", "bwd", "fwdbwd"} and "| tiny.up2x2 |" in md


def test_default_out_folder_without_checkout(tmp_path, monkeypatch):
    """Installed (no checkout around convext): results go to ./convext-bench-runs
    and the run records no git state."""
    monkeypatch.setattr(machine, "ROOT", None)
    assert runner.default_out() == Path("convext-bench-runs")
    assert machine.git_state() == {"commit": None, "dirty": None}


def test_entry_imports_nothing_outside_the_package(tmp_path):
    """Run from elsewhere, `python -m convext.bench --help` works and loads no
    module from the checkout other than convext's own."""
    code = ("import runpy, sys\n"
            "sys.argv = ['convext.bench', '--help']\n"
            "try:\n    runpy.run_module('convext.bench', run_name='__main__')\n"
            "except SystemExit as e:\n    assert e.code == 0, e.code\n"
            "import convext.bench.runner, convext.bench.plot\n"
            "root = %r\n"
            "bad = sorted(n for n, m in list(sys.modules.items())\n"
            "             if (getattr(m, '__file__', None) or '').startswith(root)\n"
            "             and not m.__file__.startswith(root + '/convext/'))\n"
            "print('OUTSIDE', bad)\n" % str(ROOT))
    proc = _outside_checkout(tmp_path, "-c", code)
    assert proc.returncode == 0, proc.stderr
    assert "--suite" in proc.stdout and "OUTSIDE []" in proc.stdout


def test_suite_shapes_are_consistent():
    for shape in suites.ALL:
        assert all(o > 0 for o in shape.out_size()), shape.name
        assert shape.cin % shape.groups == 0 and shape.cout % shape.groups == 0
        assert shape.flops_fwd(1) > 0 and shape.batch_for("cuda") >= 1
    with pytest.raises(ValueError):
        suites.select("no-such-suite")


@pytest.mark.skipif(not (torch.cuda.is_available() and convext.with_cuda()),
                    reason="needs a GPU and convext built with CUDA")
def test_cuda_both_layouts(tmp_path):
    fast_cuda = [a if a != "cpu" else "cuda" for a in FAST]
    assert runner.main([*fast_cuda, "--dtypes", "fp32,bf16", "--out", str(tmp_path)]) == 0
    result, md = _outputs(tmp_path)
    assert result["meta"]["gpu"]["name"] and result["settings"]["tf32"]["in_effect"]
    assert {(r["dtype"], r["layout"]) for r in result["rows"]} == {
        (d, l) for d in ("float32", "bfloat16") for l in ("nchw", "channels_last")}
    assert "float32/convext_channels_last_vs_native_nchw" in result["summary"]
