"""`WorkerPool`: several workers behind the one `Worker` interface.

- Routing: among the healthy workers that serve the job's model, the one with
  the fewest requests in flight from this gateway (ties broken by the load it
  last reported, then round robin).
- Models: each worker may serve different models (a base model and its LoRA
  names). The pool learns them from the worker's own list on every readiness
  poll and keeps the last answer while a worker is down, so `models()` is the
  union over every worker ever heard from: a model whose workers are all down
  is still known, and its requests get 503 (`Unavailable`), not 404.
- Retry: if the chosen worker fails before its first event (unreachable,
  crashed, or its queue is full), the job goes to another worker; once a stream
  has started it is never replayed (the client already holds tokens).
- Health: a background task polls `readiness()` of each worker; an unreachable
  worker is also marked unhealthy at once when a request finds it down. A
  worker that answers slowly is busy, not dead: only `SLOW_POLLS_TO_UNHEALTHY`
  readiness polls in a row that time out mark it unhealthy (a saturated worker
  says so itself, with 429s the pool routes around).
- A Kubernetes Service is one URL (one member; a retry may land on another
  pod), a configured list is several: both look the same from outside.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from service.config import WorkerPoolSettings
from service.contract import (
    ChatEvent,
    ChatJob,
    EmbedJob,
    EmbedResult,
    ServedModel,
    Worker,
    WorkerReadiness,
    close_events,
)
from service.errors import NotFound, ServerBusy, ServiceError, Unavailable, WorkerFailed
from service.gateway.http_client import HTTPWorkerClient
from service.metrics import Metrics

_log = logging.getLogger(__name__)
# Failures that say nothing about the request itself, so another worker may succeed.
_RETRYABLE = (Unavailable, WorkerFailed, ServerBusy)
SLOW_POLLS_TO_UNHEALTHY = 3
T = TypeVar("T")


@dataclass
class _Member:
    name: str
    worker: Worker
    healthy: bool = True  # optimistic until the first poll says otherwise
    inflight: int = 0
    reported_load: int = 0
    slow_polls: int = 0  # readiness polls in a row that timed out
    models: list[ServedModel] | None = None  # as the worker last listed them; None: never heard

    def serves(self, model: str) -> bool:
        return self.models is not None and any(m.id == model for m in self.models)


class WorkerPool(Worker):
    def __init__(
        self,
        workers: Sequence[Worker],
        *,
        names: Sequence[str] | None = None,
        poll_interval_s: float = 5.0,
        poll_timeout_s: float = 3.0,
        metrics: Metrics | None = None,
    ) -> None:
        if not workers:
            raise ValueError("WorkerPool needs at least one worker")
        labels = list(names) if names is not None else [repr(w) for w in workers]
        self._members = [_Member(n, w) for n, w in zip(labels, workers, strict=True)]
        self._poll_interval_s = poll_interval_s
        self._poll_timeout_s = poll_timeout_s
        self._metrics = metrics
        self._turn = itertools.count()
        self._poller: asyncio.Task[None] | None = None
        self._published_models: set[str] = set()
        for member in self._members:
            self._publish(member)

    @classmethod
    def from_settings(
        cls, settings: WorkerPoolSettings, *, metrics: Metrics | None = None
    ) -> WorkerPool:
        clients = [
            HTTPWorkerClient(
                url,
                connect_timeout_s=settings.worker_connect_timeout_s,
                token=settings.worker_token,
            )
            for url in settings.worker_urls
        ]
        return cls(
            clients,
            names=settings.worker_urls,
            poll_interval_s=settings.worker_poll_interval_s,
            metrics=metrics,
        )

    # --- lifecycle ---

    async def start(self) -> None:
        """Begin background readiness polling (idempotent)."""
        if self._poller is None or self._poller.done():
            self._poller = asyncio.create_task(self._poll_forever(), name="worker-pool-poll")

    async def stop(self) -> None:
        """Stop polling (the app's lifespan ends); `start` may begin it again."""
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
            self._poller = None

    async def aclose(self) -> None:
        await self.stop()
        for member in self._members:
            await member.worker.aclose()

    async def _poll_forever(self) -> None:
        while True:
            await self.poll_once()
            await asyncio.sleep(self._poll_interval_s)

    async def poll_once(self) -> list[WorkerReadiness | None]:
        """Ask every worker for readiness at once; update health. None = unreachable."""
        return list(await asyncio.gather(*(self._poll(m) for m in self._members)))

    async def _poll(self, member: _Member) -> WorkerReadiness | None:
        try:
            async with asyncio.timeout(self._poll_timeout_s):
                readiness = await member.worker.readiness()
        except TimeoutError:
            member.slow_polls += 1
            if member.slow_polls >= SLOW_POLLS_TO_UNHEALTHY:
                self._set_health(member, False, f"{member.slow_polls} readiness polls timed out")
            return None
        except (ServiceError, OSError) as exc:
            self._set_health(member, False, f"readiness failed: {exc!r}")
            return None
        member.slow_polls = 0
        member.reported_load = readiness.running + readiness.waiting
        if readiness.ready:
            # Every poll, not once: a URL may be a Service whose pods were replaced.
            await self._learn_models(member)
        self._set_health(member, readiness.ready, readiness.detail)
        return readiness

    async def _learn_models(self, member: _Member) -> None:
        """Ask `member` what it serves; on failure keep what it said before."""
        try:
            async with asyncio.timeout(self._poll_timeout_s):
                models = await member.worker.models()
        except (TimeoutError, ServiceError, OSError) as exc:
            _log.warning("worker %s did not list its models: %r", member.name, exc)
            if isinstance(exc, Unavailable):
                self._set_health(member, False, exc.message)
            return
        if member.models is None or [m.id for m in member.models] != [m.id for m in models]:
            _log.info("worker %s serves %s", member.name, ", ".join(m.id for m in models))
        member.models = models
        self._publish_models()

    def _set_health(self, member: _Member, healthy: bool, why: str) -> None:
        changed = member.healthy != healthy
        if changed:
            _log.warning(
                "worker %s is now %s (%s)", member.name, "healthy" if healthy else "unhealthy", why
            )
        member.healthy = healthy
        self._publish(member)
        if changed:
            self._publish_models()

    def _publish(self, member: _Member) -> None:
        if self._metrics is not None:
            self._metrics.worker_healthy.labels(worker=member.name).set(int(member.healthy))
            self._metrics.worker_inflight.labels(worker=member.name).set(member.inflight)

    def _publish_models(self) -> None:
        """`pandagpt_model_workers_ready`: healthy workers per known model."""
        if self._metrics is None:
            return
        ready: dict[str, int] = {}
        for member in self._members:
            for model in member.models or ():
                ready[model.id] = ready.get(model.id, 0) + int(member.healthy)
        for gone in self._published_models - ready.keys():
            self._metrics.model_workers_ready.remove(gone)
        for model_id, count in ready.items():
            self._metrics.model_workers_ready.labels(model=model_id).set(count)
        self._published_models = set(ready)

    # --- routing ---

    def _serving(self, model: str) -> list[_Member]:
        """The workers that serve `model`; `NotFound` when none does."""
        members = [m for m in self._members if m.serves(model)]
        if not members:
            raise NotFound(
                f"The model '{model}' does not exist; see GET /v1/models.",
                param="model",
                code="model_not_found",
            )
        return members

    def _pick(self, members: list[_Member], tried: set[int], model: str) -> _Member:
        healthy = [m for m in members if m.healthy]
        if not healthy:
            if self._metrics is not None:
                self._metrics.rejected_requests.labels(reason="no_worker").inc()
            if len(members) == len(self._members):
                raise Unavailable("No worker is ready to serve requests.")
            raise Unavailable(f"No worker serving the model '{model}' is ready.")
        fresh = [m for m in healthy if id(m) not in tried] or healthy
        turn = next(self._turn)
        n = len(self._members)
        return min(
            fresh,
            key=lambda m: (m.inflight, m.reported_load, (self._members.index(m) - turn) % n),
        )

    @staticmethod
    def _attempts(members: list[_Member]) -> int:
        # A single URL (a Kubernetes Service) still gets a second try: it may reach another pod.
        return max(2, len(members))

    def _acquire(self, member: _Member) -> None:
        member.inflight += 1
        self._publish(member)

    def _release(self, member: _Member) -> None:
        member.inflight -= 1
        self._publish(member)

    def _failed(self, member: _Member, exc: ServiceError) -> None:
        _log.warning("worker %s failed before streaming: %s", member.name, exc.message)
        if isinstance(exc, Unavailable):
            self._set_health(member, False, exc.message)

    async def _route(
        self, model: str, attempt: Callable[[_Member], Awaitable[T]]
    ) -> tuple[_Member, T]:
        """`attempt` on the best worker serving `model`, then on others while it fails
        in a retryable way. The member that succeeded is returned still acquired:
        release it."""
        if not any(m.models is not None for m in self._members):
            await self.models()  # no poll has answered yet: ask now (Unavailable if none can)
        members = self._serving(model)
        tried: set[int] = set()
        last: ServiceError | None = None
        for _ in range(self._attempts(members)):
            member = self._pick(members, tried, model)
            tried.add(id(member))
            self._acquire(member)
            try:
                return member, await attempt(member)
            except _RETRYABLE as exc:
                self._release(member)
                self._failed(member, exc)
                last = exc
            except BaseException:
                self._release(member)
                raise
        assert last is not None
        raise last

    async def chat(self, job: ChatJob) -> AsyncGenerator[ChatEvent, None]:
        async def open_stream(member: _Member) -> tuple[AsyncIterator[ChatEvent], ChatEvent | None]:
            # Only failures before the first event are retried: after it, the client
            # holds tokens and the stream is never replayed.
            events = aiter(member.worker.chat(job))
            try:
                return events, await anext(events, None)
            except BaseException:
                await close_events(events)
                raise

        member, (events, first) = await self._route(job.model, open_stream)
        try:
            if first is None:
                return
            yield first
            async for event in events:
                yield event
        finally:
            await close_events(events)
            self._release(member)

    async def embed(self, job: EmbedJob) -> EmbedResult:
        member, result = await self._route(job.model, lambda m: m.worker.embed(job))
        self._release(member)
        return result

    async def models(self) -> list[ServedModel]:
        """Every model some worker serves, in worker order, each id once (the first
        is the default of a request that names none). Workers never heard from are
        asked now; `Unavailable` when no worker has ever answered."""
        unknown = [m for m in self._members if m.models is None]
        if unknown:
            await asyncio.gather(*(self._learn_models(m) for m in unknown))
        union: dict[str, ServedModel] = {}
        for member in self._members:
            for model in member.models or ():
                union.setdefault(model.id, model)
        if not any(m.models is not None for m in self._members):
            raise Unavailable("No worker is ready to serve requests.")
        return list(union.values())

    async def readiness(self) -> WorkerReadiness:
        """Ready while a worker is healthy; a busy worker whose poll was slow still counts
        (with the load it last reported), so a flood does not take the gateway out of service."""
        results = await self.poll_once()
        healthy = [m for m in self._members if m.healthy]
        answered = [r for r in results if r is not None and r.ready]
        return WorkerReadiness(
            ready=bool(healthy),
            detail=f"{len(healthy)}/{len(results)} workers ready",
            cache_degraded=any(r.cache_degraded for r in answered),
            running=sum(r.running for r in answered),
            waiting=sum(r.waiting for r in answered),
        )
