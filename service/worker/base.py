"""The one interface the gateway uses to reach a worker.

Implementations: the worker itself (`WorkerService`, called in-process by
`serve`), `HTTPWorkerClient` (one remote worker over the internal API) and
`WorkerPool` (several workers, least-loaded routing). Tests may implement it
with a handler, like httpx's `MockTransport`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator

from service.worker.protocol import (
    ChatEvent,
    ChatJob,
    EmbedJob,
    EmbedResult,
    ServedModel,
    WorkerReadiness,
)


class Worker(ABC):
    @abstractmethod
    def chat(self, job: ChatJob) -> AsyncIterator[ChatEvent]:
        """Stream the job's events. Raises a `service.errors` exception before the
        first event for failures known up front (bad media, over capacity); closing
        the iterator early aborts the generation."""

    @abstractmethod
    async def embed(self, job: EmbedJob) -> EmbedResult: ...

    @abstractmethod
    async def models(self) -> list[ServedModel]: ...

    @abstractmethod
    async def readiness(self) -> WorkerReadiness: ...

    async def aclose(self) -> None:
        return None
