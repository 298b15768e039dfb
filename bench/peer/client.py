"""vLLM's own benchmark client (`vllm.benchmarks.serve`), run in a process of its own.

The client runs as a child so that its CPU is its own figure (the children's rusage
around the run) and so that its event loop competes with the servers the same way
for both sides. Run as a module, it is that child:

    python -m bench.peer.client --base-url URL --model M --tokenizer DIR \\
        --workload text --num-prompts 256 --max-concurrency 32 --result FILE
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# What each workload asks of vLLM's client: random text, or random images (one
# 224×224 image a request, its default bucket) with a short text.
WORKLOADS = {
    "text": ["--dataset-name", "random"],
    "image": [
        "--dataset-name", "random-mm",
        "--random-mm-base-items-per-request", "1",
        "--random-mm-num-mm-items-range-ratio", "0",
        "--random-mm-limit-mm-per-prompt", '{"image": 1, "video": 0}',
        "--random-mm-bucket-config", "{(224, 224, 1): 1.0}",
    ],
}  # fmt: skip
PERCENTILES = "50,99"
METRICS = "ttft,tpot,itl,e2el"


@dataclass(frozen=True)
class ClientRun:
    """One run of the client: what it measured (its result JSON) and what it cost.

    `ended_at` (time.time) and the result's `duration` give the window the requests
    ran in; `client_cpu_s` is the client's CPU from its dataset on (not its imports)."""

    result: dict[str, Any]
    client_cpu_s: float
    ended_at: float


def client_argv(
    base_url: str,
    model: str,
    tokenizer: str,
    workload: str,
    *,
    num_prompts: int,
    max_concurrency: int | None,
    request_rate: float,
    input_len: int,
    output_len: int,
    goodput: list[str],
    result: Path,
    seed: int = 0,
) -> list[str]:
    """The arguments of `vllm bench serve` for one run (backend openai-chat, ignore_eos)."""
    argv = [
        "--backend", "openai-chat",
        "--base-url", base_url,
        "--endpoint", "/v1/chat/completions",
        "--model", model,
        "--tokenizer", tokenizer,
        *WORKLOADS[workload],
        "--random-input-len", str(input_len),
        "--random-output-len", str(output_len),
        "--num-prompts", str(num_prompts),
        "--request-rate", str(request_rate),
        "--ignore-eos",
        "--seed", str(seed),
        "--percentile-metrics", METRICS,
        "--metric-percentiles", PERCENTILES,
        "--save-result",
        "--result-dir", str(result.parent),
        "--result-filename", result.name,
        "--disable-tqdm",
    ]  # fmt: skip
    if max_concurrency is not None:
        argv += ["--max-concurrency", str(max_concurrency)]
    if goodput:
        argv += ["--goodput", *goodput]
    return argv


def run_client(argv: list[str], result: Path, log: Path) -> ClientRun:
    """One client run in a child process; raises with its log tail if it fails."""
    with log.open("ab") as out:
        code = subprocess.call(
            [sys.executable, "-m", "bench.peer.client", *argv], stdout=out, stderr=out
        )
    if code != 0 or not result.exists():
        tail = log.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"vLLM's benchmark client failed ({code}):\n{tail}")
    measured = json.loads(result.read_text())
    own = measured.pop(OWN_KEY)
    return ClientRun(measured, own["cpu_s"], own["ended_at"])


OWN_KEY = "pandagpt_client"  # what the child adds to vLLM's result JSON


def main(argv: list[str]) -> None:
    from vllm.benchmarks.serve import add_cli_args
    from vllm.benchmarks.serve import main as serve_main

    parser = argparse.ArgumentParser(prog="python -m bench.peer.client")
    add_cli_args(parser)
    args = parser.parse_args(argv)
    cpu = time.process_time()
    serve_main(args)
    own = {"cpu_s": time.process_time() - cpu, "ended_at": time.time()}
    path = Path(args.result_dir) / args.result_filename
    path.write_text(json.dumps({**json.loads(path.read_text()), OWN_KEY: own}))


if __name__ == "__main__":
    main(sys.argv[1:])
