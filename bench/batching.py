"""Encoder micro-batching on vs off: the worker's `Encoder` under concurrent callers.

Shared by the CPU figure in `pandagpt bench` (bench/cache_and_batching.py, small preset) and
the GPU run (bench/gpu_batching.py, ImageBind-huge), so both measure the same
way. Imports only torch and `encoders`, so it runs where the service's
dependencies are not installed.

Two figures per setting: image bytes in (decode + preprocess + forward: what a
request costs) and preprocessed tensors in (the batched forward alone: what the
micro-batcher itself changes). "Off" is the same encoder with
`max_batch_size=1` (`PANDAGPT_ENCODER_MAX_BATCH_SIZE=1`).

Those run `concurrency` callers in lockstep rounds (each round waits for its
slowest item), so they measure round latency as much as throughput. The
open-loop figure submits `open_items` (≥ 128) bytes-in items at once and
measures how fast they drain: the encoder's throughput with a full queue.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

from torch import Tensor

from encoders.micro_batcher import Encoder

ON_BATCH_SIZE = 32


@dataclass
class BatchingFigure:
    concurrency: int
    items: int  # per trial
    trials: int  # per setting, interleaved off/on
    on_items_per_s: float  # median over trials: bytes in (decode + preprocess + forward)
    off_items_per_s: float
    on_forward_items_per_s: float  # median: preprocessed tensors in (the batcher alone)
    off_forward_items_per_s: float
    on_batch_sizes: dict[int, int]  # batch size -> forwards, bytes-in trials
    open_items: int = 0  # open loop: items submitted at once
    open_on_items_per_s: float = 0.0  # median: bytes in, all in flight
    open_off_items_per_s: float = 0.0

    @property
    def open_ratio(self) -> float:
        return self.open_on_items_per_s / self.open_off_items_per_s if self.open_items else 0.0

    @property
    def ratio(self) -> float:
        return self.on_items_per_s / self.off_items_per_s

    @property
    def forward_ratio(self) -> float:
        return self.on_forward_items_per_s / self.off_forward_items_per_s

    def to_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "ratio": self.ratio,
            "forward_ratio": self.forward_ratio,
            "open_ratio": self.open_ratio,
        }


async def items_per_s(encoder: Encoder, rounds: list[list[Any]], tensors: bool) -> float:
    """Each round: `len(round)` concurrent callers, one image each; rounds back to back."""

    def submit(item: Any) -> Any:
        if tensors:
            return encoder.encode_input("image", item)
        return encoder.encode("image", item)

    start = time.perf_counter()
    for items in rounds:
        await asyncio.gather(*(submit(item) for item in items))
    return sum(len(items) for items in rounds) / (time.perf_counter() - start)


async def open_loop_items_per_s(encoder: Encoder, items: list[bytes]) -> float:
    """All of `items` submitted at once (none waits for another): the drain rate."""
    start = time.perf_counter()
    await asyncio.gather(*(encoder.encode("image", item) for item in items))
    return len(items) / (time.perf_counter() - start)


async def compare(
    make_encoder: Callable[[int], Encoder],
    fresh_images: Iterator[bytes],
    image_tensor: Tensor,
    concurrency: int = 16,
    rounds: int = 8,
    trials: int = 3,
    open_items: int = 0,
) -> BatchingFigure:
    """Off and on alternate `trials` times (medians reported), so load drifts on a
    shared machine hit both alike. `make_encoder(max_batch_size)` builds the encoder;
    every bytes-in item is taken from `fresh_images` (first-time bytes)."""
    results: dict[tuple[int, bool | str], list[float]] = {}
    sizes: dict[int, int] = {}
    for _ in range(trials):
        for max_batch in (1, ON_BATCH_SIZE):
            async with make_encoder(max_batch) as encoder:
                for tensors in (False, True):
                    grid = [
                        [
                            image_tensor.clone() if tensors else next(fresh_images)
                            for _ in range(concurrency)
                        ]
                        for _ in range(rounds + 1)
                    ]
                    await items_per_s(encoder, grid[:1], tensors)  # warm: threads, allocator
                    encoder.stats.batch_sizes.clear()
                    rate = await items_per_s(encoder, grid[1:], tensors)
                    results.setdefault((max_batch, tensors), []).append(rate)
                    if max_batch > 1 and not tensors:
                        for size, n in encoder.stats.batch_sizes.items():
                            sizes[size] = sizes.get(size, 0) + n
                if open_items:
                    batch = [next(fresh_images) for _ in range(open_items)]
                    rate = await open_loop_items_per_s(encoder, batch)
                    results.setdefault((max_batch, "open"), []).append(rate)
    return BatchingFigure(
        concurrency=concurrency,
        items=concurrency * rounds,
        trials=trials,
        on_items_per_s=statistics.median(results[(ON_BATCH_SIZE, False)]),
        off_items_per_s=statistics.median(results[(1, False)]),
        on_forward_items_per_s=statistics.median(results[(ON_BATCH_SIZE, True)]),
        off_forward_items_per_s=statistics.median(results[(1, True)]),
        on_batch_sizes=dict(sorted(sizes.items())),
        open_items=open_items,
        open_on_items_per_s=statistics.median(results.get((ON_BATCH_SIZE, "open"), [0.0])),
        open_off_items_per_s=statistics.median(results.get((1, "open"), [0.0])),
    )
