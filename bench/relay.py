"""`pandagpt bench relay`: the tokens/s one gateway process relays per core, in split mode.

A worker process whose `Worker` answers every chat with `max_tokens` one-token steps
as fast as it can (no model: the engine is not what is measured here) serves the
worker's internal API; one `pandagpt gateway` routes to it; the benchmark's light
client streams text chats through the gateway at each concurrency. The tokens the
gateway relayed, divided by the CPU seconds its process used, is its relay capacity
per core: docs/deployment.md turns it into gateway replicas per worker. The worker
and the client share the machine's cores with the gateway, so the per-core figure,
not the raw tokens/s, is the one that carries to another machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from bench.cpu import process_tree_cpu
from bench.load import run_level
from bench.service_path import ServiceClient
from bench.workload import make_workload
from harness.deployments import local_url
from harness.processes import Process, base_env, free_port, start_pandagpt, wait_http_ok
from service.contract import (
    ChatDelta,
    ChatEvent,
    ChatJob,
    ChatUsage,
    EmbedJob,
    EmbedResult,
    ServedModel,
    Worker,
    WorkerReadiness,
)

MODEL = "relay-bench"
DEFAULT_MAX_TOKENS = 256


class FastWorker(Worker):
    """Every chat: `max_tokens` steps of one token (" tok") per choice, no waiting."""

    def __init__(self) -> None:
        self.running = 0

    async def chat(self, job: ChatJob) -> AsyncIterator[ChatEvent]:  # type: ignore[override]
        tokens = job.sampling.max_tokens or DEFAULT_MAX_TOKENS
        self.running += 1
        try:
            for index in range(job.sampling.n):
                for step in range(tokens):
                    last = step == tokens - 1
                    yield ChatDelta(
                        index=index,
                        text=" tok",
                        token_count=1,
                        finish_reason="length" if last else None,
                    )
                    await asyncio.sleep(0)  # one engine step: let the other streams move
            yield ChatUsage(prompt_tokens=8, completion_tokens=tokens * job.sampling.n)
        finally:
            self.running -= 1

    async def embed(self, job: EmbedJob) -> EmbedResult:
        raise NotImplementedError("the relay benchmark sends chats only")

    async def models(self) -> list[ServedModel]:
        return [ServedModel(id=MODEL, root=MODEL, max_model_len=4096)]

    async def readiness(self) -> WorkerReadiness:
        return WorkerReadiness(ready=True, detail="relay benchmark", running=self.running)


def serve_worker(port: int) -> None:
    import uvicorn

    from service.config import Settings
    from service.worker.http_app import create_worker_app

    app = create_worker_app(FastWorker(), Settings())
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--concurrency", default="8,32,96", help="concurrent streams per level")
    p.add_argument("--max-tokens", type=int, default=256, help="tokens per reply")
    p.add_argument("--requests-per-stream", type=int, default=4)
    p.add_argument("--out", type=Path, default=Path("artifacts/bench/relay.json"))


def run(args: argparse.Namespace) -> int:
    log_dir = args.out.parent / "relay-logs"
    worker_port = free_port()
    argv = [sys.executable, "-m", "bench.relay", "--serve-worker", str(worker_port)]
    worker = Process("relay-worker", argv, base_env(), log_dir)
    gateway = None
    try:
        wait_http_ok(worker, f"{local_url(worker_port)}/health/ready", 60)
        port = free_port()
        settings = base_env(PANDAGPT_LOG_LEVEL="warning", PANDAGPT_ENABLE_PLAYGROUND="false")
        gateway = start_pandagpt(
            "relay-gateway",
            ["gateway", "--worker-url", local_url(worker_port), "--host", "127.0.0.1"],
            port=port,
            env=settings,
            log_dir=log_dir,
        )
        levels = [int(c) for c in args.concurrency.split(",")]
        rows = [level(local_url(port), gateway.pid, worker.pid, c, args) for c in levels]
    finally:
        if gateway is not None:
            gateway.stop()
        worker.stop()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"when": time.strftime("%Y-%m-%dT%H:%M:%S"), "levels": rows}))
    print("| streams | tokens/s | gateway cores | tokens/s per gateway core | worker cores |")
    print("|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['concurrency']} | {row['tokens_per_s']:.0f} | {row['gateway_cores']:.2f} |"
            f" {row['tokens_per_gateway_core_s']:.0f} | {row['worker_cores']:.2f} |"
        )
    return 0


def level(url: str, gateway_pid: int, worker_pid: int, concurrency: int, args: Any) -> dict:
    requests = make_workload(concurrency * args.requests_per_stream, kinds=["text-only"])

    def cpu() -> tuple[float, float]:
        return sum(process_tree_cpu(gateway_pid).values()), sum(
            process_tree_cpu(worker_pid).values()
        )

    async def go() -> tuple[list[Any], float, tuple[float, float]]:
        client = ServiceClient(url, args.max_tokens)
        await client.start()
        try:
            await run_level(requests[:concurrency], concurrency, client.one)  # warm-up
            before = cpu()
            results, wall = await run_level(requests, concurrency, client.one)
            return results, wall, before
        finally:
            await client.aclose()

    print(f"[{time.strftime('%H:%M:%S')}] relay: {concurrency} streams", flush=True)
    results, wall, (gateway_before, worker_before) = asyncio.run(go())
    gateway_after, worker_after = cpu()
    gateway_cpu, worker_cpu = gateway_after - gateway_before, worker_after - worker_before
    tokens = sum(r.tokens for r in results)
    return {
        "concurrency": concurrency,
        "requests": len(results),
        "tokens": tokens,
        "wall_s": wall,
        "tokens_per_s": tokens / wall,
        "gateway_cores": gateway_cpu / wall,
        "tokens_per_gateway_core_s": tokens / gateway_cpu,
        "worker_cores": worker_cpu / wall,
    }


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve-worker"]:
        serve_worker(int(sys.argv[2]))
    else:
        from bench.cli import standalone

        raise SystemExit(standalone(sys.modules[__name__]))
