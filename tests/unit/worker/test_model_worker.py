"""ModelWorker with a fake encoder and engine (the `EncoderLike`/`EngineLike` seams),
the real projector, prompt builder, slots and in-memory cache."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import torch

from encoders.media import MediaError
from service.cache.memory import MemoryCache
from service.contract import (
    ChatDelta,
    ChatJob,
    ChatTurn,
    ChatUsage,
    EmbedJob,
    MediaItem,
    SamplingSettings,
    ServedModel,
    UserTurn,
)
from service.errors import (
    DeadlineExceeded,
    InvalidRequest,
    MediaInvalid,
    NotFound,
    ServerBusy,
    Unavailable,
)
from service.metrics import Metrics
from service.worker.engine import GenerationDelta
from service.worker.model_worker import ModelRouting, ModelWorker, WorkerLimits
from service.worker.projector import Projector
from service.worker.prompt import PromptBuilder
from service.worker.slots import SlotQueue

OUT_DIM, HIDDEN, VOCAB = 4, 8, 64


class CharTokenizer:
    bos_token_id = 1
    eos_token_id = 2

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return [3 + ord(c) % (VOCAB - 3) for c in text]


class FakeEncoder:
    def __init__(self) -> None:
        self.calls: list[str] = []

    async def encode(self, modality: str, data: bytes) -> torch.Tensor:
        self.calls.append(modality)
        await asyncio.sleep(0.01)  # a real forward takes time: concurrent callers overlap
        if data == b"bad":
            raise MediaError("corrupt", "cannot decode")
        return torch.full((OUT_DIM,), float(len(data)))

    async def embed(self, modality: str, data: bytes | str) -> torch.Tensor:
        return torch.nn.functional.normalize(torch.ones(OUT_DIM), dim=0)

    async def aclose(self) -> None:
        return None


class FakeEngine:
    """Yields `steps` deltas per choice, `delay` apart; records aborts and prompts."""

    def __init__(self, steps: int = 3, delay: float = 0.0) -> None:
        self.steps = steps
        self.delay = delay
        self.running = 0
        self.aborted: list[str] = []
        self.prompts: list[torch.Tensor] = []
        self.on_step: Callable[[int], object] | None = None  # called as each step starts

    async def generate(
        self,
        prompt_embeds: torch.Tensor,
        sampling: SamplingSettings,
        request_id: str,
        lora_name=None,
        priority: int = 0,
    ) -> AsyncIterator[GenerationDelta]:
        self.prompts.append(prompt_embeds)
        self.running += 1
        try:
            for step in range(self.steps):
                await asyncio.sleep(self.delay)
                if self.on_step is not None:
                    self.on_step(step)
                for index in range(sampling.n):
                    last = step == self.steps - 1
                    yield GenerationDelta(
                        index=index,
                        text=f"t{step}",
                        token_ids=[10 + step],
                        finish_reason="length" if last else None,
                        prompt_tokens=int(prompt_embeds.shape[0]),
                        completion_tokens=step + 1,
                    )
        except (asyncio.CancelledError, GeneratorExit):
            self.aborted.append(request_id)
            raise
        finally:
            self.running -= 1

    def num_unfinished_requests(self) -> int:
        return self.running

    async def check_health(self) -> None:
        return None

    def shutdown(self) -> None:
        return None


def make_worker(engine: FakeEngine | None = None, **kw: Any) -> tuple[ModelWorker, Any]:
    torch.manual_seed(0)
    projector = Projector(torch.randn(HIDDEN, OUT_DIM), torch.randn(HIDDEN))
    prompts = PromptBuilder(CharTokenizer(), torch.randn(VOCAB, HIDDEN))
    encoder = FakeEncoder()
    metrics = Metrics()
    worker = ModelWorker(
        encoder=encoder,
        projector=projector,
        prompts=prompts,
        engine=engine or FakeEngine(),
        cache=MemoryCache(max_entries=100, ttl_s=60, metrics=metrics),
        metrics=metrics,
        served=ModelRouting(
            models=[ServedModel(id="demo", root="/m", max_model_len=128)], lora_of={"demo": None}
        ),
        fingerprint="fp",
        slots=kw.pop("slots", SlotQueue(max_running=4, max_waiting=4)),
        limits=kw.pop("limits", WorkerLimits()),
    )
    return worker, encoder


def item(data: bytes, modality: str = "image") -> MediaItem:
    return MediaItem(modality=modality, data=data, sha256=hashlib.sha256(data).hexdigest())


def job(*media: MediaItem, n: int = 1, model: str = "demo", rid: str = "r1") -> ChatJob:
    turn = ChatTurn(user=UserTurn(text="hi", media=list(media)))
    return ChatJob(request_id=rid, model=model, turns=[turn], sampling=SamplingSettings(n=n))


async def collect(worker: ModelWorker, chat_job: ChatJob) -> list[Any]:
    return [event async for event in worker.chat(chat_job)]


async def test_stream_has_deltas_per_choice_then_usage() -> None:
    worker, _ = make_worker()
    events = await collect(worker, job(item(b"abc"), n=2))
    deltas = [e for e in events if isinstance(e, ChatDelta)]
    assert {d.index for d in deltas} == {0, 1}
    assert [d.finish_reason for d in deltas if d.index == 0][-1] == "length"
    assert isinstance(events[-1], ChatUsage)
    assert events[-1].completion_tokens == 6  # 3 per choice


async def test_media_features_are_projected_and_summed_into_one_row() -> None:
    engine = FakeEngine()
    worker, _ = make_worker(engine)
    await collect(worker, job(item(b"ab"), item(b"abcd", "audio")))
    features = torch.stack([torch.full((OUT_DIM,), 2.0), torch.full((OUT_DIM,), 4.0)])  # [N, D]
    expected = worker._projector.project(features).sum(0)  # [H]: one soft token for both
    assert sum(torch.allclose(row, expected) for row in engine.prompts[0]) == 1


async def test_repeated_media_is_a_cache_hit() -> None:
    worker, encoder = make_worker()
    await collect(worker, job(item(b"same")))
    await collect(worker, job(item(b"same"), rid="r2"))
    assert encoder.calls == ["image"]
    hits = worker._metrics.cache_hits.labels(modality="image")._value.get()
    assert hits == 1


async def test_concurrent_requests_share_one_encode() -> None:
    worker, encoder = make_worker()
    jobs = [job(item(b"shared"), rid=f"r{i}") for i in range(5)]
    await asyncio.gather(*(collect(worker, j) for j in jobs))
    assert encoder.calls == ["image"]


async def test_a_reference_reads_the_cached_feature_or_names_previous_response_id() -> None:
    """An item without bytes (an earlier turn of a stored response) is a cache lookup only."""
    engine = FakeEngine()
    worker, encoder = make_worker(engine)
    await collect(worker, job(item(b"kept")))
    reference = MediaItem(modality="image", data=b"", sha256=item(b"kept").sha256)
    await collect(worker, job(reference, rid="r2"))
    assert encoder.calls == ["image"]  # no encode for the reference
    assert torch.equal(engine.prompts[0], engine.prompts[1])  # the same soft token
    gone = MediaItem(modality="image", data=b"", sha256=item(b"never seen").sha256)
    with pytest.raises(InvalidRequest) as info:
        await collect(worker, job(gone, rid="r3"))
    assert info.value.param == "previous_response_id" and info.value.code == "media_evicted"
    assert encoder.calls == ["image"]


async def test_bad_media_fails_before_the_first_event() -> None:
    worker, _ = make_worker()
    with pytest.raises(MediaInvalid) as info:
        await collect(worker, job(item(b"bad")))
    assert info.value.reason == "corrupt" and info.value.code == "media_corrupt"


async def test_sha256_must_match_the_bytes() -> None:
    worker, _ = make_worker()
    forged = MediaItem(modality="image", data=b"abc", sha256="0" * 64)
    with pytest.raises(InvalidRequest):
        await collect(worker, job(forged))


async def test_unknown_model_is_not_found() -> None:
    worker, _ = make_worker()
    with pytest.raises(NotFound):
        await collect(worker, job(model="nope"))


async def test_full_queue_is_server_busy() -> None:
    engine = FakeEngine(steps=50, delay=0.01)
    worker, _ = make_worker(engine, slots=SlotQueue(max_running=1, max_waiting=0))
    first = worker.chat(job())
    await anext(first)  # holds the only slot
    with pytest.raises(ServerBusy):
        await collect(worker, job(rid="r2"))
    await first.aclose()


async def test_deadline_is_a_timeout_and_aborts() -> None:
    engine = FakeEngine(steps=100, delay=0.02)
    worker, _ = make_worker(engine, limits=WorkerLimits(request_timeout_s=0.2))
    with pytest.raises(DeadlineExceeded):
        await collect(worker, job())
    assert [rid.split("-")[0] for rid in engine.aborted] == ["r1"] and engine.running == 0


async def test_deadline_covers_the_wait_for_a_slot() -> None:
    engine = FakeEngine(steps=100, delay=0.02)
    slots = SlotQueue(max_running=1, max_waiting=1)
    worker, _ = make_worker(engine, slots=slots, limits=WorkerLimits(request_timeout_s=0.3))
    first = worker.chat(job())
    await anext(first)
    with pytest.raises(DeadlineExceeded):
        await collect(worker, job(rid="r2"))  # waits behind `first`, then times out
    assert slots.waiting == 0 and slots.running == 1
    await first.aclose()
    assert slots.running == 0


async def test_a_cancel_that_comes_with_an_event_still_ends_the_stream() -> None:
    """The consumer is cancelled just after its next event was taken off the queue, before
    it resumes: asyncio.wait_for (3.11) returned that event and dropped the cancellation,
    and the stream ran on to the end with its client gone."""
    engine = FakeEngine(steps=1000)
    worker, _ = make_worker(engine)

    async def consume() -> None:
        async for _ in worker.chat(job()):
            pass

    consumer = asyncio.create_task(consume())
    # Step 1 starts once step 0's delta was queued and the stream's pending get returned it.
    engine.on_step = lambda step: consumer.cancel() if step == 1 else None
    with pytest.raises(asyncio.CancelledError):
        await consumer
    assert [rid.split("-")[0] for rid in engine.aborted] == ["r1"] and engine.running == 0


async def test_closing_the_stream_aborts_the_generation() -> None:
    engine = FakeEngine(steps=100, delay=0.01)
    worker, _ = make_worker(engine)
    stream = worker.chat(job())
    await anext(stream)
    assert (await worker.readiness()).running == 1
    await stream.aclose()
    assert [rid.split("-")[0] for rid in engine.aborted] == ["r1"]
    readiness = await worker.readiness()
    assert readiness.running == 0 and readiness.ready


async def test_closed_worker_is_unavailable() -> None:
    worker, _ = make_worker()
    await worker.aclose()
    with pytest.raises(Unavailable):
        await collect(worker, job())
    assert not (await worker.readiness()).ready


async def test_embed_text_and_media() -> None:
    worker, _ = make_worker()
    result = await worker.embed(EmbedJob(request_id="e", model="demo", inputs=["a", item(b"x")]))
    assert len(result.embeddings) == 2 and len(result.embeddings[0]) == OUT_DIM
