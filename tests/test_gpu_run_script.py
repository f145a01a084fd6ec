"""benchmarks/gpu/run.sh, the one GPU command (build, GPU tests, convext vs
cuDNN timings), checked without a GPU: its --dry-run plan, and that a real
run with no GPU stops at once with a clear message and a non-zero exit."""
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu" / "run.sh"
pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def _run(*args, **env):
    return subprocess.run(["bash", str(SCRIPT), *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120,
                          env={**os.environ, "PYTHON": sys.executable, **env})


def _plan(*args):
    """The dry run's steps: name -> argv (the log redirection dropped)."""
    proc = _run("--dry-run", *args)
    assert proc.returncode == 0, proc.stderr
    steps = {}
    for line in proc.stdout.splitlines():
        if line.startswith("#"):
            continue
        name, _, command = line.partition(": ")
        steps[name] = shlex.split(command.rpartition(" > ")[0] or command)
    return proc.stdout, steps


def test_dry_run_prints_the_plan():
    out, steps = _plan()
    assert "FORCE_CUDA=1" in out and "TORCH_CUDA_ARCH_LIST=" in out
    assert list(steps) == ["gpu-check", "build", "with-cuda", "pytest-cuda", "pytest-rest",
                           "bench", "bench-no-tf32"]
    assert steps["build"][1:] == ["setup.py", "build_ext", "--inplace"]
    assert steps["pytest-cuda"][1:4] == ["-m", "pytest", "-q"]
    assert {"tests/test_cuda.py", "tests/test_autocast.py"} <= set(steps["pytest-cuda"])
    rest = steps["pytest-rest"]
    assert "tests" in rest and "--ignore=tests/test_cuda.py" in rest
    bench = steps["bench"]
    assert bench[1:3] == ["-m", "convext.bench"]

    def opt(argv, name):
        return argv[argv.index(name) + 1]
    # Equal layout (both), equal TF32 setting (torch's default: on), three dtypes.
    assert opt(bench, "--device") == "cuda" and opt(bench, "--out") == "benchmarks/results"
    assert opt(bench, "--layouts") == "nchw,channels_last"
    assert opt(bench, "--dtypes") == "float32,bfloat16,float16"
    assert "--no-tf32" not in bench and "--models" in bench
    no_tf32 = steps["bench-no-tf32"]
    assert "--no-tf32" in no_tf32 and opt(no_tf32, "--dtypes") == "float32"
    assert opt(no_tf32, "--layouts") == "nchw,channels_last"
    # Every step logs to benchmarks/results/gpu_run/.
    for name in list(steps)[1:]:
        assert f"> benchmarks/results/gpu_run/{name}.log" in out
    # The benchmark's own parser accepts both command lines.
    from convext.bench import runner
    for argv in (bench, no_tf32):
        runner.parser().parse_args(argv[3:])


def test_dry_run_options():
    _, steps = _plan("--quick", "--skip-build", "--no-models", "--", "--shapes", "resnet50.*")
    assert "build" not in steps and "with-cuda" not in steps
    for name in ("bench", "bench-no-tf32"):
        assert "--quick" in steps[name] and steps[name][-2:] == ["--shapes", "resnet50.*"]
    assert "--models" not in steps["bench"]
    _, steps = _plan("--skip-tests", "--skip-bench")
    assert list(steps) == ["gpu-check", "build", "with-cuda"]
    proc = _run("--no-such-option")
    assert proc.returncode == 2 and "unknown option '--no-such-option'" in proc.stderr


def test_without_gpu_it_fails_loudly_before_building():
    """CUDA_VISIBLE_DEVICES='' hides any GPU, so this holds on GPU machines too."""
    log_dir = ROOT / "benchmarks" / "results" / "gpu_run"
    before = log_dir.exists() and sorted(log_dir.iterdir())
    proc = _run(CUDA_VISIBLE_DEVICES="")
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "run.sh: no CUDA GPU" in proc.stderr and "torch.cuda.is_available() is False" \
        in proc.stderr and "nothing was run" in proc.stderr
    assert proc.stdout == ""  # no step started
    assert (log_dir.exists() and sorted(log_dir.iterdir())) == before
