"""Closed-loop load at a fixed concurrency, and the figures computed from it.

C client tasks pull the next request from one shared list until it is empty,
so at most C requests are in flight; the level's wall time runs from the first
send to the last reply. Both paths (service over HTTP, reference in-process)
and the structured-output runs go through `run_level`, so they are timed by
the same code.
"""

from __future__ import annotations

import asyncio
import math
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")  # one request: a BenchRequest, or a body of the structured-output runs
R = TypeVar("R")


@dataclass
class RequestResult:
    index: int
    kind: str
    ttft_s: float  # send → first generated token (queueing included)
    e2e_s: float  # send → last token
    tokens: int  # generated tokens
    text: str = ""  # decoded output, compared across paths
    token_ids: list[int] = field(default_factory=list)  # reference only


@dataclass
class LevelResult:
    path: str  # "service" | "reference"
    concurrency: int
    requests: int
    wall_s: float
    requests_per_s: float
    tokens_per_s: float
    ttft_p50_s: float
    ttft_p95_s: float
    e2e_p50_s: float
    e2e_p95_s: float
    # The load generator's CPU (this process) / (wall × CPUs): service levels only.
    client_cpu_share: float | None = None
    # Cores the server's processes kept busy, by role (bench/cpu.py): service levels only.
    server_cores: dict[str, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default method), q in [0, 100]."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summarise(
    path: str, concurrency: int, results: Sequence[RequestResult], wall_s: float
) -> LevelResult:
    ttft = [r.ttft_s for r in results]
    e2e = [r.e2e_s for r in results]
    return LevelResult(
        path=path,
        concurrency=concurrency,
        requests=len(results),
        wall_s=wall_s,
        requests_per_s=len(results) / wall_s,
        tokens_per_s=sum(r.tokens for r in results) / wall_s,
        ttft_p50_s=percentile(ttft, 50),
        ttft_p95_s=percentile(ttft, 95),
        e2e_p50_s=percentile(e2e, 50),
        e2e_p95_s=percentile(e2e, 95),
    )


def cpu_share(cpu_s: float, wall_s: float) -> float:
    """CPU seconds this process used, as a share of all the machine's CPUs over `wall_s`."""
    return cpu_s / (wall_s * (os.cpu_count() or 1))


async def run_level(
    requests: Sequence[T], concurrency: int, one: Callable[[T], Awaitable[R]]
) -> tuple[list[R], float]:
    """Run every request with at most `concurrency` in flight; results in request order."""
    pending = list(reversed(list(enumerate(requests))))
    results: dict[int, R] = {}

    async def client() -> None:
        while pending:
            position, request = pending.pop()
            results[position] = await one(request)

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    wall = time.perf_counter() - start
    return [results[i] for i in range(len(requests))], wall
