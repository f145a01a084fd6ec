"""convext's benchmark suite: `python -m convext.bench [options]` times convext
against torch's native convolution on shapes and models from real networks
(see benchmarks/README.md in the repository). It ships with the package and
imports nothing outside convext and torch, so it runs from any directory."""

__all__ = ["main"]


def main(argv=None):
    from .runner import main as run  # noqa: PLC0415 (keeps `import convext.bench` light)
    return run(argv)
