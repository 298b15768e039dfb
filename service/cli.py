"""`pandagpt` command line: the one place where argument contracts live.

Each subcommand's handler is imported lazily so that `pandagpt gateway` never
pulls in torch or vLLM. The CLI builds `Settings` once and passes it down.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

# subcommand -> "module:function"; each function takes the parsed argparse.Namespace.
HANDLERS: dict[str, str] = {
    "serve": "service.processes:run_serve",
    "gateway": "service.processes:run_gateway",
    "worker": "service.processes:run_worker",
    "convert": "service.weights.convert:run_convert_cli",
    "demo-weights": "service.weights.demo:run_demo_weights_cli",
    "fetch-weights": "service.weights.fetch:run_fetch_cli",
    "bench": "bench.cli:run_bench_cli",
    "batch": "service.batch.command:run_batch_cli",
    "batch-make": "service.batch.make:run_make_cli",  # also spelled `pandagpt batch make`
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pandagpt", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    def add_server_options(p: argparse.ArgumentParser, default_port: int) -> None:
        p.add_argument("--host", default=None, help="bind address (default from settings)")
        p.add_argument("--port", type=int, default=None, help=f"port (default {default_port})")
        p.add_argument("--config", type=Path, default=None, help="YAML or TOML settings file")

    serve = commands.add_parser("serve", help="gateway and worker in one process")
    serve.add_argument("--model-dir", type=Path, default=None)
    add_server_options(serve, 8000)

    gateway = commands.add_parser("gateway", help="the HTTP gateway, routing to workers")
    gateway.add_argument(
        "--worker-url", action="append", default=None, help="a worker's base URL (repeatable)"
    )
    add_server_options(gateway, 8000)

    worker = commands.add_parser("worker", help="a GPU worker: encoders + vLLM engine")
    worker.add_argument("--model-dir", type=Path, default=None)
    add_server_options(worker, 8001)

    convert = commands.add_parser("convert", help="convert released weights to the service layout")
    convert.add_argument("--vicuna", type=Path, required=True, help="Vicuna v0 HF directory")
    convert.add_argument("--delta", type=Path, required=True, help="PandaGPT pytorch_model.pt")
    convert.add_argument("--imagebind", type=Path, required=True, help="imagebind_huge.pth")
    convert.add_argument("--output", type=Path, required=True)
    convert.add_argument(
        "--imagebind-config", type=Path, default=None, help="JSON of ImageBind constructor kwargs"
    )
    convert.add_argument("--keep-lora", action="store_true", help="write a PEFT adapter instead")
    convert.add_argument("--name", default=None, help="served model name (default from delta)")

    demo = commands.add_parser("demo-weights", help="make a tiny random PandaGPT and convert it")
    demo.add_argument("dir", type=Path)
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--size", choices=["tiny", "small"], default="tiny")

    fetch = commands.add_parser("fetch-weights", help="download the public PandaGPT pieces")
    fetch.add_argument(
        "--variant",
        choices=["7b_max_len_512", "7b_max_len_1024", "13b_max_len_256", "13b_max_len_400"],
        default="7b_max_len_1024",
    )
    fetch.add_argument("--cache-dir", type=Path, default=Path("~/.cache/pandagpt").expanduser())
    fetch.add_argument("--skip-imagebind", action="store_true")

    bench = commands.add_parser(
        "bench", help="benchmarks: run (the default), media, flood, … (`pandagpt bench --help`)"
    )
    bench.add_argument("rest", nargs=argparse.REMAINDER)  # parsed by bench/cli.py
    add_batch_parsers(commands)
    return parser


def add_batch_parsers(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`batch` (run a JSONL batch) and `batch-make`, which `pandagpt batch make` reaches."""
    batch = commands.add_parser(
        "batch",
        help="run a JSONL batch of requests (OpenAI Batch API format), resumably",
        description="Send every line of INPUT (OpenAI Batch API lines for /v1/chat/completions"
        " and /v1/embeddings; media may be file paths) and write one OpenAI batch output line"
        " per request to --output. Run again with the same --output to resume.",
        epilog="`pandagpt batch make --help`: write a batch from a folder of media."
        " Exit status: 0 all lines succeeded, 1 some failed, 2 usage error (nothing sent),"
        " 130/143 stopped by SIGINT/SIGTERM.",
    )
    batch.add_argument("input", type=Path, help="JSONL input, one request a line")
    batch.add_argument("--output", "-o", type=Path, required=True, help="JSONL output (resumed)")
    batch.add_argument(
        "--url", default=None, help="the service's base URL; without it, serve in this process"
    )
    batch.add_argument("--api-key", default=None, help="bearer key (default: $PANDAGPT_API_KEY)")
    batch.add_argument("--concurrency", type=_positive(int), default=4, help="requests in flight")
    batch.add_argument("--max-attempts", type=_positive(int), default=6, help="tries per request")
    batch.add_argument("--timeout", type=_positive(float), default=600.0, help="s per attempt")
    batch.add_argument(
        "--backoff", type=float, default=0.5, help="first retry delay in s, doubled per retry"
    )
    batch.add_argument("--retry-errors", action="store_true", help="redo the failed lines too")
    batch.add_argument(
        "--progress-interval", type=_positive(float), default=10.0, help="s between plain lines"
    )
    batch.add_argument("--model-dir", type=Path, default=None, help="in process: model dir")
    batch.add_argument("--config", type=Path, default=None, help="in process: settings file")

    make = commands.add_parser(
        "batch-make", help="write a batch from a folder of media (`pandagpt batch make`)"
    )
    make.add_argument("--media", type=Path, required=True, help="folder of media files")
    make.add_argument("--prompt", default=None, help="the question asked of every file (chat)")
    make.add_argument("--embed", action="store_true", help="embedding requests instead of chat")
    make.add_argument("--output", "-o", type=Path, default=None, help="default: stdout")
    make.add_argument("--max-tokens", type=_positive(int), default=None)
    make.add_argument("--model", default=None, help="default: the service's first model")
    make.add_argument(
        "--images-as",
        choices=["image", "thermal", "depth"],
        default="image",
        help="the modality of image files (thermal and depth maps look like images)",
    )


def _positive(kind: Callable[[str], float]) -> Callable[[str], float]:
    def parse(text: str) -> float:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive (got {text})")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


def resolve(target: str) -> Callable[[argparse.Namespace], int | None]:
    module_name, _, attr = target.partition(":")
    return getattr(importlib.import_module(module_name), attr)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bench"]:
        # argparse's REMAINDER refuses options in first place (`bench --size small`):
        # hand everything after `bench` to the benchmark's own parser.
        return resolve(HANDLERS["bench"])(argparse.Namespace(command="bench", rest=argv[1:])) or 0
    if argv[:2] == ["batch", "make"]:
        argv = ["batch-make", *argv[2:]]  # argparse cannot nest `make` under a positional
    args = build_parser().parse_args(argv)
    return resolve(HANDLERS[args.command])(args) or 0


if __name__ == "__main__":
    raise SystemExit(main())
