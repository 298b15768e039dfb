"""A `Worker` driven by a handler, for gateway tests (like httpx's MockTransport).

It stands in for the worker only through the `Worker` interface; the real
worker is exercised by the end-to-end tests.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Awaitable, Callable

from service.contract import (
    ChatDelta,
    ChatEvent,
    ChatJob,
    ChatUsage,
    EmbedJob,
    EmbedResult,
    ServedModel,
    Worker,
    WorkerReadiness,
)

ChatHandler = Callable[[ChatJob], AsyncIterator[ChatEvent]]
EmbedHandler = Callable[[EmbedJob], Awaitable[EmbedResult]]

MODEL = "pandagpt-test"


async def echo_chat(job: ChatJob) -> AsyncIterator[ChatEvent]:
    """Answers "echo: <last user text>" word by word, for each of the n choices."""
    words = ["echo:", *job.turns[-1].user.text.split()]
    for index in range(job.sampling.n):
        for i, word in enumerate(words):
            last = i == len(words) - 1
            text = word if i == 0 else f" {word}"
            yield ChatDelta(
                index=index, text=text, token_count=1, finish_reason="stop" if last else None
            )
    yield ChatUsage(prompt_tokens=7, completion_tokens=len(words) * job.sampling.n)


async def unit_embed(job: EmbedJob) -> EmbedResult:
    vectors = [
        [1.0, 0.0, 0.0, 0.0] if isinstance(x, str) else [0.0, 1.0, 0.0, 0.0] for x in job.inputs
    ]
    return EmbedResult(embeddings=vectors, prompt_tokens=len(job.inputs))


class ScriptedWorker(Worker):
    def __init__(
        self,
        chat: ChatHandler = echo_chat,
        embed: EmbedHandler = unit_embed,
        *,
        models: list[str] | None = None,
        ready: bool = True,
    ) -> None:
        self.chat_handler = chat
        self.embed_handler = embed
        self.model_ids = models or [MODEL]
        self.ready = ready
        self.jobs: list[ChatJob] = []
        self.embed_jobs: list[EmbedJob] = []
        self.running = 0
        self.closed = threading.Event()  # a chat stream ended (finished or closed early)
        self.aborted = threading.Event()  # a chat stream was closed before it finished

    async def chat(self, job: ChatJob) -> AsyncIterator[ChatEvent]:  # type: ignore[override]
        self.jobs.append(job)
        self.running += 1
        finished = False
        try:
            async for event in self.chat_handler(job):
                yield event
            finished = True
        finally:
            self.running -= 1
            if not finished:
                self.aborted.set()
            self.closed.set()

    async def embed(self, job: EmbedJob) -> EmbedResult:
        self.embed_jobs.append(job)
        return await self.embed_handler(job)

    async def models(self) -> list[ServedModel]:
        return [ServedModel(id=m, root=m, max_model_len=2048) for m in self.model_ids]

    async def readiness(self) -> WorkerReadiness:
        await asyncio.sleep(0)
        return WorkerReadiness(ready=self.ready, detail="scripted", running=self.running)
