"""BatchScheduler with a stand-in forward (no model): keys, oldest first, isolation."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch
from torch import Tensor

from encoders.batch_scheduler import BatchScheduler, Want, batch_modality


class Recorder:
    """A forward that sums each item and notes the towers and batch sizes it ran;
    any item holding a NaN breaks its whole batch."""

    def __init__(self) -> None:
        self.batches: list[tuple[str, int]] = []

    def __call__(self, tower: str, items: list[Tensor], wants: list[Want]) -> list[Tensor]:
        self.batches.append((tower, len(items)))
        x = torch.stack(items)
        if x.isnan().any():
            raise FloatingPointError("a NaN item")
        return list(x.flatten(1).sum(dim=1))


async def run(forward: Recorder, items: list[tuple[str, Tensor]], **options) -> list[object]:
    with ThreadPoolExecutor(1) as thread:
        scheduler = BatchScheduler(forward, thread, **{"max_batch_size": 8, **options})
        try:
            return await asyncio.gather(
                *(scheduler.submit(m, x, "pandagpt") for m, x in items), return_exceptions=True
            )
        finally:
            await scheduler.aclose()


async def test_items_batch_per_tower_and_shape_oldest_key_first() -> None:
    forward = Recorder()
    items = [
        ("imu", torch.ones(6, 4)),
        ("image", torch.ones(3, 2, 2)),
        ("imu", torch.ones(6, 4)),
        ("video", torch.ones(1, 3, 2, 2, 2)),
    ]
    results = await run(forward, items, max_wait_s=0.2)
    assert forward.batches == [("imu", 2), ("vision", 1), ("vision", 1)]
    assert [float(r) for r in results] == [24.0, 12.0, 24.0, 24.0]


async def test_a_failing_batch_is_retried_item_by_item() -> None:
    forward = Recorder()
    items = [("imu", torch.ones(6, 4)), ("imu", torch.full((6, 4), float("nan")))]
    good, bad = await run(forward, items, max_wait_s=0.2)
    assert float(good) == 24.0 and isinstance(bad, FloatingPointError)
    assert forward.batches == [("imu", 2), ("imu", 1), ("imu", 1)]


@pytest.mark.parametrize(
    ("key", "modality"),
    [(("vision", (3, 224, 224)), "image"), (("vision", (2, 3, 2, 224, 224)), "video"),
     (("audio", (3, 1, 128, 204)), "audio")],
)  # fmt: skip
def test_batch_modality_names_what_the_vision_tower_runs(key, modality: str) -> None:
    assert batch_modality(key) == modality
