"""CUDA-graph replay of the encoder's forward on a GPU worker.

At batch 1 ImageBind's towers are launch-bound on a GPU: hundreds of small
kernels, each waiting on the CPU to queue it. A captured graph queues them all
at once (docs/DESIGN.md §6: 2.29 ms per image with replay against several
times that eager). The batcher's batch sizes vary, so a graph is captured per
(tower, item shape, dtype, batch bucket), buckets being powers of two up to the
batcher's largest batch: a batch of 5 runs in the graph of 8, its three spare
rows left holding whatever the last replay put there (items never mix inside a
tower, so the spare rows cannot change the real ones).

Captures are lazy (the first batch of a shape pays one warm-up and a capture)
and share one memory pool, which is safe because one thread replays one graph
at a time and reads its outputs before the next replay. Past ``max_graphs``
shapes, batches run eagerly rather than pinning more GPU memory. The text tower
stays eager: its inputs are token ids for /v1/embeddings only.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from torch import Tensor

from encoders.imagebind.model import ImageBindModel

logger = logging.getLogger(__name__)

GraphKey = tuple[str, tuple[int, ...], torch.dtype, int]


@dataclass
class _Captured:
    graph: torch.cuda.CUDAGraph
    static_input: Tensor  # [bucket, ...item shape]
    head: Tensor  # [bucket · clips, out_dim]
    num_clips: int | None


def batch_buckets(max_batch_size: int) -> list[int]:
    """Powers of two below ``max_batch_size``, then ``max_batch_size`` itself."""
    buckets, size = [], 1
    while size < max_batch_size:
        buckets.append(size)
        size *= 2
    return [*buckets, max_batch_size]


class GraphedHeads:
    """``model.encode_heads(tower, x)`` served from captured CUDA graphs."""

    def __init__(self, model: ImageBindModel, *, max_batch_size: int, max_graphs: int = 32):
        self.model = model
        self.buckets = batch_buckets(max_batch_size)
        self.max_graphs = max_graphs
        self._graphs: dict[GraphKey, _Captured] = {}
        self._pool = torch.cuda.graph_pool_handle()
        self.captures = 0
        self.replays = 0

    def __call__(self, tower: str, x: Tensor) -> tuple[Tensor, int | None]:
        batch = x.shape[0]
        if tower == "text" or not x.is_cuda or batch > self.buckets[-1]:
            return self.model.encode_heads(tower, x)
        bucket = next(b for b in self.buckets if b >= batch)
        key: GraphKey = (tower, tuple(x.shape[1:]), x.dtype, bucket)
        captured = self._graphs.get(key)
        if captured is None:
            if len(self._graphs) >= self.max_graphs:
                return self.model.encode_heads(tower, x)
            captured = self._capture(key, x)
            self._graphs[key] = captured
        captured.static_input[:batch].copy_(x)
        captured.graph.replay()
        self.replays += 1
        rows = batch * (captured.num_clips or 1)
        return captured.head[:rows], captured.num_clips

    def _capture(self, key: GraphKey, example: Tensor) -> _Captured:
        tower, item_shape, _, bucket = key
        static_input = example[:1].expand(bucket, *item_shape).clone()
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up: lazy inits must not land in the graph
            for _ in range(2):
                self.model.encode_heads(tower, static_input)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self._pool):
            head, num_clips = self.model.encode_heads(tower, static_input)
        self.captures += 1
        logger.info("captured a CUDA graph for %s %s × %d", tower, list(item_shape), bucket)
        return _Captured(graph, static_input, head, num_clips)
