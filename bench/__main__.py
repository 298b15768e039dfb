"""`python -m bench ...`: the same as `pandagpt bench ...`."""

from __future__ import annotations

import sys

from bench.cli import main

if __name__ == "__main__":  # vLLM spawns processes that re-import the main module
    raise SystemExit(main(sys.argv[1:]))
