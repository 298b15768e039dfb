"""Options several benchmarks share: the demo weights they run on, the server's settings.

`make_demo_weights` reuses a directory whose weights are current, so every
benchmark that names the same `--weights-dir` (default `.cache/bench-<size>`)
shares one copy, converted weights and unconverted sources side by side.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_weights_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--size", choices=["tiny", "small"], default="small", help="demo preset")
    p.add_argument("--weights-dir", type=Path, default=None, help="default .cache/bench-<size>")


def weights_root(args: argparse.Namespace) -> Path:
    return Path(args.weights_dir or f".cache/bench-{args.size}")


def demo_weights(args: argparse.Namespace, seed: int = 0) -> Path:
    """The converted model dir under `weights_root(args)`, made on first use."""
    from service.weights.demo import make_demo_weights

    return make_demo_weights(weights_root(args), seed=seed, size=args.size)


def reference_delta(args: argparse.Namespace) -> Path:
    """The unconverted PandaGPT delta the reference path loads."""
    return weights_root(args) / "sources" / f"pandagpt-demo-{args.size}" / "pytorch_model.pt"


def add_server_env_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="PANDAGPT_X=V",
        help="a setting for `pandagpt serve` (repeatable), e.g. PANDAGPT_ENFORCE_EAGER=true",
    )


def server_settings(args: argparse.Namespace) -> dict[str, str]:
    """`--server-env` as the settings `bench.server` starts the service with."""
    return dict(item.split("=", 1) for item in args.server_env)
