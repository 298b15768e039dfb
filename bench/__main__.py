"""`python -m bench ...`: the same as `pandagpt bench ...`."""

from __future__ import annotations

import argparse
import sys

from bench.cli import run_bench_cli

if __name__ == "__main__":  # vLLM spawns processes that re-import the main module
    raise SystemExit(run_bench_cli(argparse.Namespace(rest=sys.argv[1:])))
