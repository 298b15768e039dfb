"""The benchmark's reference path: `reference.ReferencePath` behind a FIFO queue.

Requests are served strictly one at a time, as the demo's single model served
them: concurrent clients queue on a FIFO lock, so their latencies include the
wait, while throughput stays that of one request after another. `one` has the
signature of `ServiceClient.one`, so `bench.load.run_level` times both paths.
"""

from __future__ import annotations

import asyncio
import time

from bench.load import RequestResult
from bench.workload import BenchRequest
from reference.path import ReferencePath


class ReferenceClient:
    def __init__(self, path: ReferencePath) -> None:
        self.path = path
        self._lock = asyncio.Lock()  # FIFO: one request at a time

    async def one(self, request: BenchRequest) -> RequestResult:
        media = [(item.modality, item.data) for item in request.media]
        start = time.perf_counter()
        async with self._lock:
            timed = await asyncio.to_thread(self.path.serve, request.question, request.turns, media)
        e2e = time.perf_counter() - start
        return RequestResult(
            request.index,
            request.kind,
            ttft_s=timed.token_times[0] - start,
            e2e_s=e2e,
            tokens=len(timed.ids),
            text=self.path.decode(timed.ids),
            token_ids=timed.ids,
        )
