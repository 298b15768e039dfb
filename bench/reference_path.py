"""The reference path: PandaGPT's original inference, one request at a time.

What the original demo did per request, on the UNCONVERTED demo sources:
decode and preprocess each media item the way the original did
(`bench.upstream_media`: every video frame decoded, FFmpeg's default probing,
Pillow + bicubic; the same tensors as the service's exact preprocessing, so
this path keeps the original's media cost as the service's gets faster),
run ImageBind in PyTorch eager at
batch 1 (our `encoders` ImageBind loading the source `.pth`: the same weights
and, per the parity tests, the same features as upstream), project and sum
into the soft token, concatenate the prompt embeddings and call
transformers + peft `generate(inputs_embeds=…)` with the LoRA unmerged
(`bench.reference_pandagpt.ReferencePandaGPT`). No cache, no batching.

Requests are served strictly one at a time, as the demo's single model served
them: concurrent clients queue on a FIFO lock, so their latencies include the
wait, while throughput stays that of one request after another.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import torch

from bench.load import RequestResult
from bench.reference_pandagpt import ReferencePandaGPT
from bench.upstream_media import preprocess_upstream
from bench.workload import BenchRequest, MediaItem
from encoders.imagebind.checkpoint import load_imagebind
from encoders.imagebind.config import ImageBindConfig
from encoders.imagebind.model import ImageBindModel
from encoders.micro_batcher import TOWERS


class ReferencePath:
    def __init__(self, sources: Path, delta: Path, max_tokens: int) -> None:
        """`sources`: the demo's `sources/` dir (vicuna/, imagebind.pth + its config)."""
        self.max_tokens = max_tokens
        self.llm = ReferencePandaGPT(sources / "vicuna", delta, dtype=torch.float32)
        # The demo writes ImageBind's constructor kwargs beside the `.pth`, as a user would.
        kwargs = json.loads((sources / "imagebind_config.json").read_text())["constructor_args"]
        self.imagebind: ImageBindModel = load_imagebind(
            sources / "imagebind.pth", ImageBindConfig(**kwargs)
        )
        self._lock = asyncio.Lock()  # FIFO: one request at a time

    @torch.no_grad()
    def feature(self, item: MediaItem) -> torch.Tensor:
        """One item, batch 1: bytes → model input → PandaGPT feature `[out_dim]`."""
        x = preprocess_upstream(item.modality, item.data)  # [1, ...]
        tower = TOWERS[item.modality]  # video runs the vision tower on a 6-D input
        return self.imagebind.pandagpt_features({tower: x})[tower][0]

    def serve(self, request: BenchRequest) -> tuple[list[int], list[float]]:
        """The whole request, synchronously: (generated ids, time of each token)."""
        features = [self.feature(item) for item in request.media]
        embeds = self.llm.inputs_embeds(request.question, request.turns, features)
        timed = self.llm.generate_fixed(embeds, self.max_tokens)
        return timed.ids, timed.token_times

    def decode(self, ids: list[int]) -> str:
        return str(self.llm.tokenizer.decode(ids, skip_special_tokens=True))

    async def one(self, request: BenchRequest) -> RequestResult:
        start = time.perf_counter()
        async with self._lock:
            ids, times = await asyncio.to_thread(self.serve, request)
        e2e = time.perf_counter() - start
        return RequestResult(
            request.index,
            request.kind,
            ttft_s=times[0] - start,
            e2e_s=e2e,
            tokens=len(ids),
            text=self.decode(ids),
            token_ids=ids,
        )
