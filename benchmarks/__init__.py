"""convext's benchmark suite. Run it with `python -m convext.bench` (see README.md here)."""
