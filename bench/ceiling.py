"""The language side's ceiling: the engine alone against the reference's `generate`.

`pandagpt bench` compares whole requests. This asks how far any service built on
vLLM could get on this machine: the worker's `LLMEngine` in process (no HTTP,
no gateway, no media, no cache) generates from the reference's own prompt
embeddings of a text-only chat, at each concurrency level, against
`ReferencePandaGPT.generate_fixed` (transformers + peft, LoRA unmerged) on the
same prompt, one request after another. Both greedy, exactly `--max-tokens`
new tokens. If the engine alone is k× the reference, the service cannot be far
above k× on the same machine, whatever it does around the engine.

The cores each of vLLM's processes kept busy are reported per level
(bench/cpu.py), to set beside the service's split that `pandagpt bench` prints.

    pandagpt bench ceiling --size small --out artifacts/bench/ceiling.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from bench.cli import standalone
from bench.options import add_weights_arguments, demo_weights, reference_delta, weights_root
from reference.pandagpt import ReferencePandaGPT

QUESTION = "Tell me a story about a cat."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_weights_arguments(parser)
    parser.add_argument("--concurrency", default="1,32", help="comma-separated levels")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--trials", type=int, default=5, help="per level; the first is warm-up")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path)


def reference_tokens_per_s(ref: ReferencePandaGPT, embeds: torch.Tensor, args: Any) -> float:
    times = []
    for _ in range(args.trials):
        start = time.perf_counter()
        ref.generate_fixed(embeds, args.max_tokens)
        times.append(time.perf_counter() - start)
    return args.max_tokens / statistics.median(times[1:])


@dataclass
class EngineRun:
    concurrency: int
    tokens_per_s: float
    cores: dict[str, float]  # busy cores by process: bench/cpu.py's roles


async def engine_runs(
    model_dir: Path, embeds: torch.Tensor, levels: list[int], args: Any
) -> list[EngineRun]:
    from bench.cpu import cores_used, process_tree_cpu
    from service.config import Settings
    from service.contract import SamplingSettings
    from service.worker.engine import LLMEngine

    engine = LLMEngine.start(Settings.load(model_dir=model_dir), model_dir)
    sampling = SamplingSettings(max_tokens=args.max_tokens, temperature=0.0, ignore_eos=True)
    calls = 0

    async def one() -> int:
        nonlocal calls
        calls += 1
        tokens = 0
        async for delta in engine.generate(embeds, sampling, f"ceiling-{calls}"):
            tokens = delta.completion_tokens
        return tokens

    async def measure(level: int) -> EngineRun:
        times = []
        for trial in range(args.trials):
            if trial == 1:  # after the warm-up trial
                cpu = process_tree_cpu(os.getpid())
                timed_from = time.perf_counter()
            start = time.perf_counter()
            counts = await asyncio.gather(*(one() for _ in range(level)))
            times.append(time.perf_counter() - start)
            assert counts == [args.max_tokens] * level, counts
        cores = cores_used(cpu, process_tree_cpu(os.getpid()), time.perf_counter() - timed_from)
        cores["bench"] = cores.pop("frontend")  # this process: AsyncLLM's client side
        rate = level * args.max_tokens / statistics.median(times[1:])
        return EngineRun(level, rate, cores)

    runs = []
    try:
        for level in levels:
            runs.append(await measure(level))
    finally:
        engine.shutdown()
    return runs


def run(args: argparse.Namespace) -> int:
    os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", "nobind")  # as bench/server.py
    levels = [int(x) for x in args.concurrency.split(",") if x.strip()]
    model_dir = demo_weights(args, seed=args.seed)
    ref = ReferencePandaGPT(weights_root(args) / "sources" / "vicuna", reference_delta(args))
    embeds = ref.inputs_embeds(QUESTION)  # [1, T, C]
    reference = reference_tokens_per_s(ref, embeds, args)
    del ref
    runs = asyncio.run(engine_runs(model_dir, embeds[0].clone(), levels, args))
    report = {
        "load_average": os.getloadavg(),
        "nproc": os.cpu_count(),
        "prompt_rows": int(embeds.shape[1]),
        "max_tokens": args.max_tokens,
        "reference_tokens_per_s": reference,
        "engine_tokens_per_s": {str(r.concurrency): r.tokens_per_s for r in runs},
        "engine_over_reference": {str(r.concurrency): r.tokens_per_s / reference for r in runs},
        "runs": [asdict(r) for r in runs],
    }
    print(f"reference (one at a time): {reference:.1f} tok/s")
    for r in runs:
        split = ", ".join(f"{k} {v:.2f}" for k, v in r.cores.items())
        print(
            f"engine alone, {r.concurrency:>3} concurrent: {r.tokens_per_s:.1f} tok/s = "
            f"{r.tokens_per_s / reference:.2f}x (cores busy: {split})"
        )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(standalone(sys.modules[__name__]))
