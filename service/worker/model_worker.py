"""`ModelWorker`: the real worker, media bytes in, token stream out.

For a chat job:
1. slots (bounded running + waiting; `ServerBusy` beyond it),
2. per media item: embedding-cache lookup (key: encoder fingerprint, modality,
   sha256) → on a miss the batched `Encoder` (decode and preprocess in threads)
   → cache set; a `MediaError` becomes `MediaInvalid` before any event,
3. `llama_proj` on each feature, all summed into one soft token (docs/DESIGN.md §2),
4. prompt embeddings from `PromptBuilder`, generation in the `LLMEngine`,
5. `ChatDelta` events per choice, then one `ChatUsage`.

The engine runs in a pump task that feeds a queue, so the stream can enforce
the per-request deadline between tokens, and closing the iterator (a client
disconnect) cancels the pump, which aborts the request in vLLM and frees its
slot. Metrics recorded here are the worker's share (see service.metrics):
queue time and, through the encoder's observer, encoder batches.

Spans (service.telemetry, when tracing is on): `engine.queue` (waiting for one
of the engine's running slots), `media.feature` per item (with `cache.get`,
`encoder.preprocess` and `encoder.batch` inside), `prompt.build`,
`engine.prefill` (to the first token), `engine.decode` and `stream`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import uuid
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field

import torch

from encoders.fair_pool import current_owner
from encoders.media import MediaBusy, MediaError
from service import telemetry
from service.cache import CacheKey, EmbeddingCache, pack_f32, unpack_f32
from service.contract import (
    ChatDelta,
    ChatEvent,
    ChatJob,
    ChatUsage,
    EmbedJob,
    EmbedResult,
    MediaItem,
    ServedModel,
    Worker,
    WorkerReadiness,
)
from service.errors import (
    DeadlineExceeded,
    InvalidRequest,
    MediaInvalid,
    NotFound,
    ServerBusy,
    ServiceError,
    Unavailable,
)
from service.metrics import Metrics
from service.worker.engine import GenerationDelta, engine_error
from service.worker.grammar import GrammarChecker
from service.worker.interfaces import EncoderLike, EngineLike
from service.worker.projector import Projector
from service.worker.prompt import Conversation, PromptBuilder, PromptEmbeds, PromptError
from service.worker.single_flight import SingleFlight
from service.worker.slots import SlotQueue

_log = logging.getLogger(__name__)
_DONE = object()


@dataclass
class WorkerLimits:
    request_timeout_s: float = 600.0
    health_timeout_s: float = 5.0


@dataclass
class ModelRouting:
    """What the worker answers to: the base model and its LoRA variants."""

    models: list[ServedModel]
    lora_of: dict[str, str | None] = field(default_factory=dict)  # model id -> LoRA name

    def resolve(self, name: str) -> str | None:
        """The LoRA name serving `name` (None for the base); `NotFound` if unknown."""
        if name not in self.lora_of:
            known = ", ".join(m.id for m in self.models)
            raise NotFound(
                f"The model `{name}` does not exist. Available: {known}.",
                param="model",
                code="model_not_found",
            )
        return self.lora_of[name]


class ModelWorker(Worker):
    def __init__(
        self,
        *,
        encoder: EncoderLike,
        projector: Projector,
        prompts: PromptBuilder,
        engine: EngineLike,
        cache: EmbeddingCache,
        metrics: Metrics,
        served: ModelRouting,
        fingerprint: str,
        slots: SlotQueue,
        limits: WorkerLimits | None = None,
        embedding_models: Sequence[str] = (),
        health_label: str | None = None,
        grammar: GrammarChecker | None = None,
    ) -> None:
        """`health_label`: publish each readiness answer as `pandagpt_worker_healthy`
        under this name (`serve`, where no pool does it for the gateway). `grammar`:
        compile output constraints before generation (else only vLLM checks them)."""
        self._encoder = encoder
        self._projector = projector
        self._prompts = prompts
        self._engine = engine
        self._cache = cache
        self._metrics = metrics
        self._served = served
        self._fingerprint = fingerprint
        self._slots = slots
        self._limits = limits or WorkerLimits()
        self._embedding_models = {*embedding_models, *served.lora_of}
        self._flights: SingleFlight[torch.Tensor] = SingleFlight()
        self._health_label = health_label
        self._grammar = grammar
        self._closed = False

    # --- chat ---

    @property
    def default_model(self) -> str:
        return self._served.models[0].id

    async def chat(self, job: ChatJob) -> AsyncGenerator[ChatEvent, None]:
        if self._closed:  # a pool sends the job to another worker
            raise Unavailable("The worker is shutting down.")
        lora_name = self._served.resolve(job.model)
        current_owner.set(job.request_id)  # the preprocessing pool serves requests in turn
        if self._grammar is not None:  # a bad schema is a 400 before it takes a slot
            await self._grammar.check(job.sampling.constraint)
        loop = asyncio.get_running_loop()
        enqueued = loop.time()
        deadline = enqueued + self._limits.request_timeout_s
        async with contextlib.AsyncExitStack() as slot:
            try:
                # The deadline covers the wait for a slot and the media encoding too.
                async with asyncio.timeout_at(deadline):
                    with telemetry.span("engine.queue"):
                        await slot.enter_async_context(self._slots.slot(job.priority))
                    self._metrics.queue_time.observe(loop.time() - enqueued)
                    prompt = await self._prompt(job)
            except TimeoutError as exc:
                raise DeadlineExceeded("Request timed out before generation started.") from exc
            # aclosing: closing this iterator must close the inner one now (not at GC),
            # so its `finally` cancels the pump and vLLM aborts the request.
            async with contextlib.aclosing(
                self._stream(job, prompt, lora_name, deadline)
            ) as events:
                async for event in events:
                    yield event

    async def _prompt(self, job: ChatJob) -> PromptEmbeds:
        soft_token = await self.soft_token(job.media())
        try:
            conversation = Conversation.of_job(job)
            with telemetry.span("prompt.build"):
                return await asyncio.to_thread(self._prompts.build, conversation, soft_token)
        except PromptError as exc:
            raise InvalidRequest(str(exc), param="messages") from exc

    async def soft_token(self, items: Sequence[MediaItem]) -> torch.Tensor | None:
        """Sum of `llama_proj(feature)` over all media items (docs/DESIGN.md §2), or None."""
        if not items:
            return None
        results = await asyncio.gather(
            *(self.feature(item, index) for index, item in enumerate(items)),
            return_exceptions=True,
        )
        features: list[torch.Tensor] = []
        for result in results:
            if isinstance(result, BaseException):
                raise result
            features.append(result)
        return await asyncio.to_thread(self._projector.soft_token, features)  # [hidden]

    async def feature(self, item: MediaItem, index: int = 0) -> torch.Tensor:
        """The PandaGPT feature (`[out_dim]`, float32) of one item, through the cache.

        Concurrent requests for the same item share one lookup and one encode
        (`SingleFlight`): it stops only when every caller has gone away."""
        with telemetry.span("media.feature", modality=item.modality, index=index):
            return await self._feature(item, index)

    async def _feature(self, item: MediaItem, index: int) -> torch.Tensor:
        key = CacheKey(self._fingerprint, item.modality, item.sha256)
        if not item.data and key not in self._flights:  # a stored turn's: the cache or nothing
            return await self._referenced(key)
        if item.data:
            digest = await asyncio.to_thread(lambda: hashlib.sha256(item.data).hexdigest())
            if digest != item.sha256:
                raise InvalidRequest(f"media item {index}: sha256 does not match its bytes")
        try:
            return await self._flights.run(key, lambda: self._lookup_or_encode(key, item.data))
        except MediaError as exc:
            raise MediaInvalid(
                f"media item {index} ({item.modality}): {exc.message}", reason=exc.reason
            ) from exc
        except MediaBusy as exc:
            raise ServerBusy(exc.message, retry_after=exc.retry_after) from exc

    async def _referenced(self, key: CacheKey) -> torch.Tensor:
        feature = await self._cached(key)
        if feature is None:
            raise InvalidRequest(  # the bytes were never kept: only the client has them
                f"The {key.modality} of an earlier turn is no longer in the feature cache;"
                " send the conversation again in full, without previous_response_id.",
                param="previous_response_id",
                code="media_evicted",
            )
        return feature

    async def _cached(self, key: CacheKey) -> torch.Tensor | None:
        """The cached feature, or None (an entry of the wrong size counts as a miss)."""
        cached = await self._cache.get(key)
        if cached is None or len(cached) != 4 * self._projector.in_dim:
            return None
        return torch.tensor(unpack_f32(cached), dtype=torch.float32)

    async def _lookup_or_encode(self, key: CacheKey, data: bytes) -> torch.Tensor:
        cached = await self._cached(key)
        if cached is not None:
            return cached
        # a miss (or a wrong-sized entry, overwritten here): encode
        feature = await self._encoder.encode(key.modality, data)
        await self._cache.set(key, pack_f32(feature.tolist()))
        return feature

    async def _stream(
        self, job: ChatJob, prompt: PromptEmbeds, lora_name: str | None, deadline: float
    ) -> AsyncGenerator[ChatEvent, None]:
        """Engine deltas → events, within the deadline; leaving early aborts the engine."""
        events: asyncio.Queue[object] = asyncio.Queue()
        # The pump, a task of its own, keeps the deadline: one timer for the whole
        # generation, not one per token here (where the consuming task may change).
        pump = asyncio.create_task(self._pump(job, prompt, lora_name, events, deadline))
        completion_tokens: dict[int, int] = {}
        # Ended in `finally`, not a `with`: this generator's context may change between events.
        span = telemetry.start_span("stream", n=job.sampling.n)
        try:
            while True:
                item = await events.get()
                if item is _DONE:
                    break
                if isinstance(item, BaseException):
                    raise item
                assert isinstance(item, GenerationDelta)
                completion_tokens[item.index] = item.completion_tokens
                yield ChatDelta(
                    index=item.index,
                    text=item.text,
                    token_count=len(item.token_ids),
                    finish_reason=item.finish_reason,  # type: ignore[arg-type]
                    logprobs=item.logprobs,
                )
            yield ChatUsage(
                prompt_tokens=prompt.num_tokens,
                completion_tokens=sum(completion_tokens.values()),
            )
        finally:
            if not pump.done():
                pump.cancel()  # LLMEngine.generate aborts the vLLM request on cancel
            # asyncio.wait, not gather: cancelling this wait again must not cancel the
            # pump a second time, in the middle of vLLM's abort.
            await asyncio.wait({pump})
            span.set_attribute("completion_tokens", sum(completion_tokens.values()))
            span.end()

    async def _pump(
        self,
        job: ChatJob,
        prompt: PromptEmbeds,
        lora_name: str | None,
        events: asyncio.Queue[object],
        deadline: float,
    ) -> None:
        # Request ids may come from clients (X-Request-ID) and repeat; vLLM's must not.
        engine_id = f"{job.request_id}-{uuid.uuid4().hex[:8]}"
        span = telemetry.start_span("engine.prefill", prompt_tokens=prompt.num_tokens)
        first = True
        stream = self._engine.generate(  # an async generator: nothing runs until iterated
            prompt.embeds, job.sampling, engine_id, lora_name=lora_name, priority=job.priority
        )
        timeout = asyncio.timeout_at(deadline)
        try:
            async with timeout:
                async for delta in stream:
                    if first:  # prefill ends with the first token; decoding follows
                        first = False
                        span.end()
                        span = telemetry.start_span("engine.decode")
                    events.put_nowait(delta)
            events.put_nowait(_DONE)
        except TimeoutError as exc:
            if not timeout.expired():
                events.put_nowait(engine_error(exc, job.request_id))
            else:  # leaving the engine's stream has aborted the request
                events.put_nowait(DeadlineExceeded("Request timed out during generation."))
        except asyncio.CancelledError:
            raise
        except ServiceError as exc:
            events.put_nowait(exc)
        except Exception as exc:
            events.put_nowait(engine_error(exc, job.request_id))
        finally:
            span.end()

    # --- embeddings ---

    async def embed(self, job: EmbedJob) -> EmbedResult:
        current_owner.set(job.request_id)  # the preprocessing pool serves requests in turn
        if job.model not in self._embedding_models:
            known = ", ".join(sorted(self._embedding_models))
            raise NotFound(
                f"The model `{job.model}` does not exist. Available: {known}.",
                param="model",
                code="model_not_found",
            )
        try:
            async with asyncio.timeout(self._limits.request_timeout_s):
                vectors = await asyncio.gather(
                    *(self._embed_one(item, i) for i, item in enumerate(job.inputs))
                )
        except TimeoutError as exc:
            raise DeadlineExceeded("Embedding request timed out.") from exc
        return EmbedResult(embeddings=[v.tolist() for v in vectors])

    async def _embed_one(self, item: str | MediaItem, index: int) -> torch.Tensor:
        if isinstance(item, str):
            return await self._encoder.embed("text", item)
        try:
            return await self._encoder.embed(item.modality, item.data)
        except MediaError as exc:
            raise MediaInvalid(
                f"input {index} ({item.modality}): {exc.message}",
                reason=exc.reason,
                param=f"input.{index}",
            ) from exc
        except MediaBusy as exc:
            raise ServerBusy(exc.message, retry_after=exc.retry_after) from exc

    # --- models, readiness, shutdown ---

    async def models(self) -> list[ServedModel]:
        return list(self._served.models)

    async def readiness(self) -> WorkerReadiness:
        # Counted before the health round-trip, which waits for the engine's next
        # step: the figures describe the moment the probe arrived.
        running, waiting = self._engine.num_unfinished_requests(), self._slots.waiting
        ready, detail = True, "ok"
        if self._closed:
            ready, detail = False, "shutting down"
        else:
            try:
                async with asyncio.timeout(self._limits.health_timeout_s):
                    await self._engine.check_health()
            except Exception as exc:  # any failure means "not ready", with its reason
                ready, detail = False, f"engine: {exc!r}"[:200]
        if self._health_label is not None:
            self._metrics.worker_healthy.labels(worker=self._health_label).set(int(ready))
        return WorkerReadiness(
            ready=ready,
            detail=detail,
            cache_degraded=self._cache.degraded,
            running=running,
            waiting=waiting,
        )

    async def aclose(self) -> None:
        """Stop the engine (its processes), the encoder's threads and the cache client."""
        if self._closed:
            return
        self._closed = True
        # On the loop thread on purpose: vLLM cancels its output handler task at the
        # end of shutdown, and a handler left running meanwhile logs the dying core
        # as an engine failure. Nothing else is served by now.
        self._engine.shutdown()
        if self._grammar is not None:
            self._grammar.close()
        await self._encoder.aclose()
        await self._cache.aclose()
