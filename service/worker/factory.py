"""`build_worker(settings)`: load a converted model dir into a ready `ModelWorker`.

Loads, in order: the manifest, ImageBind (`imagebind.safetensors` +
`imagebind_config.json`) into the batched `Encoder`, `llama_proj`, the vLLM
engine, then the tokenizer and the `embed_tokens` table for prompt building.
Device and dtype come from `Settings` (float32 on CPU by default, docs/DESIGN.md §3).
Blocking loads run in threads, so the event loop (and a server's liveness
answer) is never stuck behind them.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Callable
from pathlib import Path

import torch

from encoders.imagebind.checkpoint import load_imagebind
from encoders.media import MediaBusy, MediaError, MediaLimits
from encoders.media.guard import Reserve
from encoders.micro_batcher import Encoder
from service import telemetry
from service.cache import EmbeddingCache, create_cache
from service.config import Settings
from service.contract import ServedModel
from service.errors import ServerBusy
from service.memory import MemoryBudget, budget_from_settings
from service.metrics import Metrics
from service.weights.layout import Manifest, ModelLayout
from service.worker.engine import LLMEngine, resolve_device, resolve_dtype
from service.worker.grammar import GrammarChecker
from service.worker.model_worker import ModelRouting, ModelWorker, WorkerLimits
from service.worker.projector import Projector
from service.worker.prompt import PromptBuilder, load_embed_tokens
from service.worker.slots import SlotQueue

_log = logging.getLogger(__name__)

# Bump when preprocessing or the feature definition changes: old cache entries
# then stop matching instead of feeding stale features to the LLM.
FEATURE_VERSION = "pandagpt-feature-v1"


async def build_worker(
    settings: Settings,
    *,
    metrics: Metrics,
    cache: EmbeddingCache | None = None,
    health_label: str | None = None,
    budget: MemoryBudget | None = None,
) -> ModelWorker:
    """`budget`: the process's memory budget, which decoded media are reserved from (the
    one its HTTP layer counts request bodies against); a budget of its own when None."""
    if settings.model_dir is None:
        raise ValueError("build_worker needs settings.model_dir (a `pandagpt convert` output)")
    layout = ModelLayout(Path(settings.model_dir).resolve())
    manifest = Manifest.load(layout.manifest)
    device = resolve_device(settings)
    dtype = resolve_dtype(settings, device)
    _log.info("loading %s on %s (%s)", layout.root, device, dtype)

    model = await asyncio.to_thread(load_imagebind, layout.imagebind, None, device, dtype)
    encoder = Encoder(
        model,
        device=device,
        dtype=dtype,
        max_batch_size=settings.encoder_max_batch_size,
        max_wait_ms=settings.encoder_max_wait_ms,
        preprocess_workers=settings.preprocess_workers,
        limits=media_limits(settings),
        on_batch=EncoderMetrics(metrics),
        tracer=telemetry.encoder_tracer(),
        cuda_graphs=settings.encoder_cuda_graphs,
        gpu_jpeg=settings.media_fidelity == "fast",
        reserve=decode_reserve(budget or budget_from_settings(settings, metrics), settings),
    )
    projector = await asyncio.to_thread(Projector.load, layout.projector, device, dtype)
    engine = await asyncio.to_thread(LLMEngine.start, settings, layout.root)
    embed_tokens = await asyncio.to_thread(load_embed_tokens, layout.llm, device, dtype)
    prompts = PromptBuilder(engine.tokenizer, embed_tokens)

    return ModelWorker(
        encoder=encoder,
        projector=projector,
        prompts=prompts,
        engine=engine,
        cache=cache if cache is not None else create_cache(settings, metrics),
        metrics=metrics,
        served=served_models(settings, manifest, layout, engine.served_model_names),
        fingerprint=encoder_fingerprint(layout, manifest, dtype, media_path(settings, device)),
        slots=SlotQueue(
            max_running=settings.max_num_seqs,
            max_waiting=settings.max_queue_size,
            retry_after_s=settings.retry_after_s,
        ),
        limits=WorkerLimits(request_timeout_s=settings.request_timeout_s),
        health_label=health_label,
        grammar=GrammarChecker(
            engine.tokenizer, engine.vocab_size, timeout_s=settings.grammar_compile_timeout_s
        ),
    )


def media_path(settings: Settings, device: torch.device) -> str:
    """The media fidelity as the cache key sees it: nvJPEG's fast pixels differ from Pillow's."""
    on_gpu = settings.media_fidelity == "fast" and device.type == "cuda"
    return "fast-nvjpeg" if on_gpu else settings.media_fidelity


def media_limits(settings: Settings) -> MediaLimits:
    return MediaLimits(
        max_bytes=settings.max_media_bytes,
        max_decoded_bytes=settings.max_decoded_bytes,
        max_audio_decoded_bytes=settings.max_audio_decoded_bytes,
        max_video_decode_pixels=settings.max_video_decode_pixels,
        max_decode_cpu_s=settings.max_decode_cpu_s,
        video_codecs=tuple(settings.video_codecs),
        audio_codecs=tuple(settings.audio_codecs),
        image_formats=tuple(settings.image_formats),
        fidelity=settings.media_fidelity,
    )


def decode_reserve(budget: MemoryBudget, settings: Settings) -> Reserve:
    """The encoder's `reserve`: decoded bytes held against `budget` from a preprocessing
    thread, waiting up to `decode_reserve_wait_s` for room, then `MediaBusy` (429)."""

    def reserve(nbytes: int, what: str) -> Callable[[], None]:
        if nbytes > budget.limit_bytes:  # would not fit an idle process either
            raise MediaError(
                "too_large",
                f"{what} would decode to {nbytes} bytes, over this server's"
                f" {budget.limit_bytes}-byte memory budget",
            )
        try:
            return budget.hold(nbytes, f"decoding {what}", settings.decode_reserve_wait_s)
        except ServerBusy as exc:
            raise MediaBusy(exc.message, exc.retry_after or settings.retry_after_s) from exc

    return reserve


def served_models(
    settings: Settings, manifest: Manifest, layout: ModelLayout, engine_names: list[str]
) -> ModelRouting:
    """The base model (its configured name) and, when LoRA adapters are served
    unmerged, one model per adapter with the base as parent."""
    base = settings.served_model_name or manifest.served_model_name
    max_len = settings.max_model_len or manifest.max_position_embeddings
    root = str(layout.root)
    models = [ServedModel(id=base, root=root, max_model_len=max_len)]
    lora_of: dict[str, str | None] = {base: None}
    for name in engine_names:
        if name == manifest.served_model_name:
            continue  # the merged model is the base itself
        models.append(ServedModel(id=name, root=root, parent=base, max_model_len=max_len))
        lora_of[name] = name
    if len(lora_of) > 1:
        # Unmerged mode: the base name means the default adapter.
        lora_of[base] = engine_names[0]
    return ModelRouting(models=models, lora_of=lora_of)


def encoder_fingerprint(
    layout: ModelLayout, manifest: Manifest, dtype: torch.dtype, fidelity: str = "exact"
) -> str:
    """Names the encoder weights, config, dtype, feature definition and (when not exact)
    the media fidelity: the cache key's head."""
    weights = manifest.sources.get("imagebind", {}).get("sha256")
    if not weights:  # converted without checksums: size+name is the best cheap stand-in
        weights = f"{layout.imagebind.name}:{layout.imagebind.stat().st_size}"
    config = (
        json.loads(layout.imagebind_config.read_text()) if layout.imagebind_config.exists() else {}
    )
    parts: list[object] = [FEATURE_VERSION, weights, config, str(dtype)]
    if fidelity != "exact":  # fast-mode features are close, not equal: never share entries
        parts.append(fidelity)
    text = json.dumps(parts, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class EncoderMetrics:
    """The encoder's per-batch observer: batch size and forward time, per modality."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def __call__(self, modality: str, batch_size: int, seconds: float) -> None:
        self._metrics.encoder_batch_size.labels(modality=modality).observe(batch_size)
        self._metrics.encode_latency.labels(modality=modality).observe(seconds)
