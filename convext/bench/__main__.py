"""`python -m convext.bench`: the benchmark's command line (runner.py)."""
import sys

from . import main

if __name__ == "__main__":
    sys.exit(main())
