"""The set-up's messages and metadata: a build that cannot import torch says
why (pip's build isolation hiding an installed torch, or no torch at all), and
the package depends on numpy (torch warns on every import without it)."""
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Makes `import torch` fail the way it does inside pip's isolated build
# environment (which puts its own site-packages, without torch, on the path).
HIDE_TORCH = '''
import sys
class _HideTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ModuleNotFoundError("No module named 'torch'", name="torch")
sys.meta_path.insert(0, _HideTorch())
'''


def _run_setup(python, pythonpath):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONPATH"] = os.pathsep.join(map(str, pythonpath))
    return subprocess.run([str(python), "setup.py", "--name"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, env=env)


def test_build_isolation_hiding_torch_says_no_build_isolation(tmp_path):
    (tmp_path / "sitecustomize.py").write_text(HIDE_TORCH)
    proc = _run_setup(sys.executable, [tmp_path])
    assert proc.returncode != 0
    assert "torch is installed" in proc.stderr and "build isolation" in proc.stderr
    assert "pip install --no-build-isolation ." in proc.stderr
    assert "must be installed" not in proc.stderr


def test_build_without_torch_says_install_it(tmp_path):
    """An interpreter that has setuptools but no torch at all."""
    venv = tmp_path / "venv"
    made = subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)],
                          capture_output=True, text=True, timeout=120)
    if made.returncode != 0:
        pytest.skip(f"cannot create a venv here: {made.stderr[-200:]}")
    import setuptools  # noqa: PLC0415 - only its location is needed
    tools = tmp_path / "tools"
    tools.mkdir()
    site = Path(setuptools.__file__).resolve().parents[1]
    for name in ("setuptools", "pkg_resources", "_distutils_hack"):
        if (site / name).exists():
            (tools / name).symlink_to(site / name)
    proc = _run_setup(venv / "bin" / "python", [tools])
    if "No module named" in proc.stderr and "torch" not in proc.stderr:
        pytest.skip(f"setuptools does not run from a bare venv here: {proc.stderr[-200:]}")
    assert proc.returncode != 0
    assert "PyTorch must be installed before building convext" in proc.stderr
    assert "--index-url https://download.pytorch.org/whl/cpu" in proc.stderr
    assert "--no-build-isolation" in proc.stderr


def test_numpy_is_a_dependency():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert any(dep.split(">")[0].split("=")[0].strip() == "numpy"
               for dep in project["dependencies"])
