"""`pandagpt bench <benchmark> [options]` (also `python -m bench`): every benchmark, one entry.

Each benchmark is a module with `add_arguments(parser)` and `run(args) -> exit
status`; this file only names them and dispatches. A module is imported when
its benchmark is chosen, so `--help` lists them all without loading torch.
`pandagpt bench` with no benchmark, or with options first, is `pandagpt bench
run`: the full comparison as it always ran. Every module still runs on its own
as `python -m bench.<module>` through `standalone`.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

DEFAULT = "run"


@dataclass(frozen=True)
class Benchmark:
    module: str
    help: str
    # Modules that still parse their own argv: `main(argv)` gets everything after the name.
    own_parser: bool = False
    # A group (`pandagpt bench gpu <check>`): its entries instead of a module.
    checks: dict[str, Benchmark] | None = None


# Run on a CUDA machine without vLLM (bench/gpu_check.sh, bench/gpu_media_check.sh).
GPU_CHECKS: dict[str, Benchmark] = {
    "batching": Benchmark("bench.gpu_batching", "encoder micro-batching on vs off"),
    "media": Benchmark("bench.gpu_media", "12 MP photos through preprocessing and the encoder"),
    "prompt-parity": Benchmark("bench.gpu_prompt_parity", "fp16 prompt embeddings vs reference"),
}

BENCHMARKS: dict[str, Benchmark] = {
    "run": Benchmark("bench.full", "the service against the reference PandaGPT path (default)"),
    "media": Benchmark(
        "bench.media", "media preprocessing per modality, ours against the original's", True
    ),
    "flood": Benchmark("bench.flood", "large or hostile media under load: memory, health", True),
    "structured": Benchmark("bench.structured", "what a json_schema grammar costs"),
    "multiturn": Benchmark("bench.multiturn", "multi-turn TTFT with and without prefix caching"),
    "responses-ttft": Benchmark(
        "bench.responses_ttft", "turn 2 by previous_response_id against the chat sent in full"
    ),
    "ceiling": Benchmark("bench.ceiling", "the engine alone against the reference's generate"),
    "peer": Benchmark("bench.peer", "against vLLM's own server and a prompt-embeds peer"),
    "relay": Benchmark("bench.relay", "tokens/s one gateway relays per core (split mode)"),
    "encoder": Benchmark("bench.encoder", "the ImageBind forward: eager, CUDA graphs, compile"),
    "gpu": Benchmark("", "the checks for a CUDA machine (no vLLM)", checks=GPU_CHECKS),
}


def first_line(module: ModuleType) -> str:
    return (module.__doc__ or "").strip().splitlines()[0]


def chosen(words: Sequence[str], table: dict[str, Benchmark] = BENCHMARKS) -> list[Benchmark]:
    """The entries `words` name, outermost first (`gpu batching`: the group, then the check)."""
    path: list[Benchmark] = []
    for word in words:
        if word not in table:
            break
        path.append(table[word])
        if table[word].checks is None:
            break
        table = table[word].checks or {}
    return path


def add_benchmarks(
    parser: argparse.ArgumentParser, table: dict[str, Benchmark], words: Sequence[str]
) -> None:
    """A subcommand per entry of `table`. Only the entry `words` name imports its module
    for its options: the others' help comes from the table, and their imports wait."""
    commands = parser.add_subparsers(metavar="{" + ",".join(table) + "}", title="commands")
    for name, bench in table.items():
        sub = commands.add_parser(name, help=bench.help, add_help=not bench.own_parser)
        if words[:1] != [name] or bench.own_parser:
            continue
        if bench.checks is not None:
            sub.description = bench.help
            add_benchmarks(sub, bench.checks, words[1:])
            continue
        module = importlib.import_module(bench.module)
        sub.description = first_line(module)
        module.add_arguments(sub)


def build_parser(words: Sequence[str] = ()) -> argparse.ArgumentParser:
    """The parser for `pandagpt bench WORDS…`: every subcommand, the options of the one named."""
    parser = argparse.ArgumentParser(
        prog="pandagpt bench",
        description=__doc__.splitlines()[0],
        epilog=f"No benchmark named (options only, or none): `{DEFAULT}`.",
    )
    add_benchmarks(parser, BENCHMARKS, list(words))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in {*BENCHMARKS, "-h", "--help"}:
        argv = [DEFAULT, *argv]  # what `pandagpt bench [options]` always meant
    path = chosen(argv)
    if path and path[-1].own_parser:
        return int(importlib.import_module(path[-1].module).main(argv[len(path) :]) or 0)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if not path or path[-1].checks is not None:  # `pandagpt bench gpu` alone
        parser.error(f"{' '.join(argv[: len(path)])}: name one of {', '.join(GPU_CHECKS)}")
    return int(importlib.import_module(path[-1].module).run(args) or 0)


def standalone(module: ModuleType, argv: Sequence[str] | None = None) -> int:
    """`python -m bench.<module>`: the module's own options, without the dispatcher.
    Each module ends with `raise SystemExit(standalone(sys.modules[__name__]))`."""
    prog = f"python -m {module.__spec__.name}" if module.__spec__ else Path(module.__file__).name
    parser = argparse.ArgumentParser(prog=prog, description=first_line(module))
    module.add_arguments(parser)
    return int(module.run(parser.parse_args(argv)) or 0)


def run_bench_cli(args: argparse.Namespace) -> int:
    """Entry point from `pandagpt bench ...`: everything after `bench` is in `args.rest`."""
    return main(getattr(args, "rest", None) or [])
