"""`python -m convext.bench [options]`: benchmark convext against torch's native
convolution. The suite itself lives in the checkout's benchmarks/ package (see
benchmarks/README.md); this is only its entry point."""
import sys
from pathlib import Path

__all__ = ["main"]


def _checkout():
    """The source checkout this convext was imported from (benchmarks/ beside convext/)."""
    root = Path(__file__).resolve().parents[1]
    if not (root / "benchmarks" / "runner.py").is_file():
        raise SystemExit(
            f"convext.bench: no benchmarks/ folder next to this convext ({root}).\n"
            "The benchmark suite is part of the source checkout, not of an installed "
            "package: run it from the checkout, e.g.\n"
            "    cd path/to/convext && python -m convext.bench")
    return root


def main(argv=None):
    root = str(_checkout())
    if root not in sys.path:
        sys.path.insert(0, root)
    from benchmarks.runner import main as run  # noqa: PLC0415 (needs the path above)
    return run(argv)


if __name__ == "__main__":
    sys.exit(main())
