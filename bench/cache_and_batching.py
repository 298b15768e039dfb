"""Two focused figures: encoder micro-batching on vs off, and cached vs uncached media.

Batching: the worker's `Encoder` built exactly as `build_worker` builds it
(ImageBind from the converted model dir, batch size / wait / preprocess
threads from `Settings`), driven in-process by 16 concurrent callers. "Off" is
the same encoder with `encoder_max_batch_size=1`
(`PANDAGPT_ENCODER_MAX_BATCH_SIZE=1`). Two figures: image bytes in (decode +
preprocess + forward: what a request costs) and preprocessed tensors in (the
batched forward alone: what the micro-batcher itself changes). In process, so
that the figure is the encoder's and not the LLM's or HTTP's.

Cache: sequential image chats against the running service, alternating a
first-time image (new bytes: a cache miss, so decode + encode) with one
repeated image (a hit after its first send), so that load drifts on this
shared machine hit both series alike. Short replies (`max_tokens`, default 1)
keep the generation from hiding the media path.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.batching import BatchingFigure, compare
from bench.load import percentile
from bench.service_path import ServiceClient
from bench.workload import BenchRequest, MediaItem, fixture, unique_images


@dataclass
class CacheFigure:
    requests: int
    max_tokens: int
    first_p50_s: float
    repeated_p50_s: float
    first_s: list[float]
    repeated_s: list[float]

    @property
    def ratio(self) -> float:
        return self.repeated_p50_s / self.first_p50_s

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ratio": self.ratio}


def _encoder(model: Any, max_batch_size: int) -> Any:
    """An `Encoder` built as `build_worker` builds it, with only the batch size changed."""
    import torch

    from encoders.micro_batcher import Encoder
    from service.config import Settings

    settings = Settings.load(encoder_max_batch_size=max_batch_size)
    return Encoder(
        model,
        device="cpu",
        dtype=torch.float32,
        max_batch_size=settings.encoder_max_batch_size,
        max_wait_ms=settings.encoder_max_wait_ms,
        preprocess_workers=settings.preprocess_workers,
    )


async def batching_figure(
    model_dir: Path, concurrency: int = 16, rounds: int = 8, trials: int = 3, open_items: int = 128
) -> BatchingFigure:
    """The small preset's ImageBind on this CPU, as the worker runs it (bench/batching.py)."""
    import torch

    from encoders.imagebind.checkpoint import load_imagebind
    from encoders.media import preprocess

    model = load_imagebind(model_dir / "imagebind.safetensors", None, "cpu", torch.float32)
    per_trial = concurrency * (rounds + 1) * 2 + open_items
    fresh = iter(unique_images(per_trial * trials * 2, start=20_000))
    return await compare(
        lambda max_batch: _encoder(model, max_batch),
        fresh,
        preprocess("image", fixture("dog_image.jpg")),
        concurrency,
        rounds,
        trials,
        open_items,
    )


def _image_chat(index: int, data: bytes) -> BenchRequest:
    return BenchRequest(
        index, "image", "What is in this image?", media=[MediaItem("image", "dog_image.jpg", data)]
    )


async def cache_figure(
    client: ServiceClient, requests: int = 16, max_tokens: int = 1
) -> CacheFigure:
    # Fresh tags: distinct from the load runs' media, so "first" really is a first time.
    first_images = unique_images(requests, start=10_000)
    repeated = _image_chat(-1, fixture("car_image.jpg")).messages()
    await client.chat(repeated, max_tokens)  # its first send: now it is cached
    first_s: list[float] = []
    repeated_s: list[float] = []
    for i, data in enumerate(first_images):
        _, e2e, _, _ = await client.chat(_image_chat(i, data).messages(), max_tokens)
        first_s.append(e2e)
        _, e2e, _, _ = await client.chat(repeated, max_tokens)
        repeated_s.append(e2e)
    return CacheFigure(
        requests,
        max_tokens,
        percentile(first_s, 50),
        percentile(repeated_s, 50),
        first_s,
        repeated_s,
    )
