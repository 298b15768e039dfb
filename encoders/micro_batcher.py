"""Batched ImageBind encoding for concurrent asyncio callers (docs/INTERFACES.md).

`Encoder` is the facade the worker holds. It owns the model on its device and the
one thread its forwards run on, and wires three parts together, each in its own
module:

- `encoders.preprocess_stage`: bytes → tensors in a pool of `preprocess_workers`
  threads (at most the CPUs this process may use, `encoders.media.threads.usable_cpus`:
  affinity and cgroup quota), each item under a `DecodeGuard`; nvJPEG on CUDA.
- `encoders.input_checks`: modality names, per-item shapes and dtypes, text tokens.
  Checks happen per item, before batching, so a bad item fails only its own caller.
- `encoders.batch_scheduler`: items grouped per (tower, item shape), a batch run
  when full or when its oldest item has waited `max_wait_ms`; a failing batch is
  retried item by item.

Every forward runs on the dedicated thread under `torch.inference_mode()` with the
intra-op thread count the encoder was built with, through the CUDA-graph heads
(`encoders.cuda_graphs`) where those are on. Tracing goes through an optional
`encoders.tracing.EncoderTracer`; without one, nothing is traced.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

from encoders.batch_scheduler import BatchObserver, BatchScheduler, EncoderStats, Want
from encoders.cuda_graphs import GraphedHeads
from encoders.imagebind.model import ImageBindModel
from encoders.input_checks import TOWERS, TextTokens, checked_item
from encoders.media.threads import usable_cpus
from encoders.preprocess_stage import PreprocessStage
from encoders.tracing import EncoderTracer

if TYPE_CHECKING:
    from encoders.imagebind.tokenizer import CLIPTokenizer
    from encoders.media import MediaLimits
    from encoders.media.guard import Reserve

# What callers import from here besides `Encoder` (bench's reference path takes TOWERS).
__all__ = ["TOWERS", "Encoder", "EncoderTracer"]


class Encoder:
    """See the module docstring. Results are float32 CPU tensors `[out_dim]`."""

    def __init__(
        self,
        model: ImageBindModel,
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        max_batch_size: int = 32,
        max_wait_ms: float = 5.0,
        preprocess_workers: int | None = None,
        tokenizer: CLIPTokenizer | None = None,
        limits: MediaLimits | None = None,
        on_batch: BatchObserver | None = None,
        tracer: EncoderTracer | None = None,
        cuda_graphs: bool = False,
        gpu_jpeg: bool = False,
        reserve: Reserve | None = None,
    ) -> None:
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
        if max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must be >= 0, got {max_wait_ms}")
        self.device = torch.device(device)
        self.dtype = dtype
        self.model = model.to(device=self.device, dtype=dtype).eval()
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_ms / 1000.0
        self.limits = limits
        self.reserve = reserve
        self.on_batch = on_batch
        self.tracer = tracer
        # CUDA-graph replay is GPU-only (encoders/cuda_graphs.py), ignored elsewhere.
        graphs = cuda_graphs and self.device.type == "cuda"
        self._heads = GraphedHeads(self.model, max_batch_size=max_batch_size) if graphs else None
        self._tokens = TextTokens(tokenizer)
        cpus = usable_cpus()
        self.preprocess_workers = max(1, min(preprocess_workers or cpus, cpus))
        self._preprocessing = PreprocessStage(
            self.preprocess_workers,
            device=self.device,
            limits=limits,
            reserve=reserve,
            tracer=tracer,
            gpu_jpeg=gpu_jpeg,
            gpu_jpeg_batch_size=max_batch_size,
        )
        # The stage's pool and nvJPEG stage, under the names tests and GPU checks inspect.
        self._preprocess_pool = self._preprocessing.pool
        self._gpu_jpeg = self._preprocessing.gpu_jpeg
        # Preprocessing threads set torch to one thread, which torch also makes the
        # default for threads started later: the forward thread sets its own.
        self._forward_pool = ThreadPoolExecutor(
            1,
            thread_name_prefix="imagebind-forward",
            initializer=torch.set_num_threads,
            initargs=(torch.get_num_threads(),),
        )
        self._batches = BatchScheduler(
            self._forward,
            self._forward_pool,
            max_batch_size=max_batch_size,
            max_wait_s=self.max_wait_s,
            on_batch=on_batch,
            tracer=tracer,
        )
        self.stats: EncoderStats = self._batches.stats
        self._closed = False

    @property
    def out_dim(self) -> int:
        return self.model.config.out_embed_dim

    # ------------------------------------------------------------ public API
    async def encode(self, modality: str, data: bytes) -> Tensor:
        """PandaGPT feature of one media item given as bytes."""
        return await self.encode_input(
            modality, await self._preprocessing.preprocess(modality, data)
        )

    async def encode_input(self, modality: str, tensor: Tensor) -> Tensor:
        """PandaGPT feature of one already-preprocessed item (with or without batch dim 1)."""
        if modality == "text":
            raise ValueError("PandaGPT has no text media feature; use embed('text', ...)")
        return await self._submit(modality, tensor, "pandagpt")

    async def embed(self, modality: str, data: bytes | str | Tensor) -> Tensor:
        """Upstream ImageBind embedding, L2-normalised (for /v1/embeddings)."""
        if modality == "text":
            if not isinstance(data, str):
                raise ValueError("text embeddings take a str")
            x = await self._preprocessing.run(self._tokens, data)
        elif isinstance(data, Tensor):
            x = data
        elif isinstance(data, bytes):
            x = await self._preprocessing.preprocess(modality, data)
        else:
            raise ValueError(f"{modality} embeddings take bytes or a tensor")
        return await self._submit(modality, x, "embed")

    async def aclose(self) -> None:
        self._closed = True
        await self._batches.aclose()
        await self._preprocessing.aclose()
        # Waits for a forward in progress without blocking the event loop.
        await asyncio.to_thread(self._forward_pool.shutdown, True)

    async def __aenter__(self) -> Encoder:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # ------------------------------------------------------------ internals
    async def _submit(self, modality: str, tensor: Tensor, want: Want) -> Tensor:
        if self._closed:
            raise RuntimeError("encoder closed")
        x = checked_item(self.model.config, self.device, modality, tensor)
        return await self._batches.submit(modality, x, want)

    def _forward(self, tower: str, items: list[Tensor], wants: list[Want]) -> list[Tensor]:
        """One batch of one tower; runs on the forward thread."""
        model = self.model
        with torch.inference_mode():
            x = torch.stack(items).to(self.device, non_blocking=True)  # (B, ...)
            if x.is_floating_point():
                x = x.to(self.dtype)
            if self._heads is not None:
                head, num_clips = self._heads(tower, x)
            else:
                head, num_clips = model.encode_heads(tower, x)
            out: dict[Want, Tensor] = {}
            if "pandagpt" in wants:
                out["pandagpt"] = model.postprocess(tower, head, num_clips, pandagpt=True).cpu()
            if "embed" in wants:
                upstream = model.postprocess(tower, head, num_clips)
                out["embed"] = F.normalize(upstream, dim=-1).cpu()
        # Cloned outside inference mode: callers may use them with autograd-enabled modules.
        return [out[w][i].clone() for i, w in enumerate(wants)]
