"""The contract between the gateway and a worker: the `Worker` interface and
the job and event types that cross it. Nothing else lives here.

Both sides import this module and nothing of each other (CI checks the import
direction, see `pyproject.toml` [tool.importlinter]). Implementations of
`Worker`: the worker itself (`service.worker.model_worker.ModelWorker`, called
in-process by `serve` or behind the worker's HTTP API), and on the gateway
side `HTTPWorkerClient` (one remote worker) and `WorkerPool` (several). Tests
may implement it with a handler, like httpx's `MockTransport`.

The same models travel in-process (the `serve` default) and over the internal
HTTP API (split mode, JSON lines). Media bytes are fetched and hashed by the
gateway; the worker trusts the sha256 only as a cache key, never as proof of
content safety. Errors cross as `WorkerErrorEvent`, named by their
`service.errors` class, and are rebuilt with `service.errors.error_from_kind`.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

_log = logging.getLogger(__name__)

Modality = Literal["image", "video", "audio", "thermal", "depth", "imu"]
FinishReason = Literal["stop", "length", "abort", "error"]


class MediaItem(BaseModel):
    # Media bytes are binary: pydantic's JSON default (utf-8) would fail on them.
    model_config = ConfigDict(ser_json_bytes="base64", val_json_bytes="base64")

    modality: Modality
    data: bytes = Field(repr=False)  # base64 in JSON (pydantic's bytes serialisation)
    sha256: str


class UserTurn(BaseModel):
    """One human turn: its text, and the media it carried (in order)."""

    text: str
    media: list[MediaItem] = Field(default_factory=list)


class ChatTurn(BaseModel):
    user: UserTurn
    assistant: str | None = None  # None only for the last, unanswered turn


class SamplingSettings(BaseModel):
    """Engine-neutral sampling settings; None means "server/reference default"."""

    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    n: int = 1
    seed: int | None = None
    stop: list[str] = Field(default_factory=list)
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    ignore_eos: bool = False  # benchmarks only: fixed-length outputs
    # None: no logprobs; k: each generated token's logprob and the k most likely.
    logprobs: int | None = None


class ChatJob(BaseModel):
    request_id: str
    model: str
    system: str | None = None
    turns: list[ChatTurn]
    sampling: SamplingSettings = Field(default_factory=SamplingSettings)

    def media(self) -> list[MediaItem]:
        """Every media item of the conversation, in order: PandaGPT sums them all
        into one soft token, whichever turn carried them."""
        return [item for turn in self.turns for item in turn.user.media]


class TopLogprob(BaseModel):
    token: str
    logprob: float


class TokenLogprob(TopLogprob):
    """A generated token's logprob, with the most likely tokens at its position."""

    top_logprobs: list[TopLogprob] = Field(default_factory=list)


class ChatDelta(BaseModel):
    """One streamed step for one choice. The last step of a choice carries finish_reason."""

    type: Literal["delta"] = "delta"
    index: int
    text: str
    token_count: int = 0
    finish_reason: FinishReason | None = None
    logprobs: list[TokenLogprob] | None = None  # one per token of this step, when asked for


class ChatUsage(BaseModel):
    type: Literal["usage"] = "usage"
    prompt_tokens: int
    completion_tokens: int


class WorkerErrorEvent(BaseModel):
    """A failure after streaming began (or any failure, over HTTP)."""

    type: Literal["error"] = "error"
    kind: str  # the exception class name from service.errors, e.g. "MediaInvalid"
    message: str
    param: str | None = None
    code: str | None = None


ChatEvent = ChatDelta | ChatUsage | WorkerErrorEvent


class EmbedJob(BaseModel):
    request_id: str
    model: str
    inputs: list[str | MediaItem]


class EmbedResult(BaseModel):
    embeddings: list[list[float]]
    prompt_tokens: int = 0


class ServedModel(BaseModel):
    id: str
    root: str
    parent: str | None = None  # base model name for LoRA variants
    max_model_len: int


class WorkerReadiness(BaseModel):
    ready: bool
    detail: str = ""
    cache_degraded: bool = False
    running: int = 0
    waiting: int = 0


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

    async def start(self) -> None:
        """Begin background work that lives with a server's lifespan (the pool's
        readiness polling); `stop` ends it. Both may be called again."""
        return None

    async def stop(self) -> None:
        return None

    async def aclose(self) -> None:
        return None


async def close_events(events: AsyncIterator[ChatEvent]) -> None:
    """Close a chat stream now (not at garbage collection), which aborts its
    generation. A failure while closing is logged, never raised: it must not
    mask the outcome of the request that is ending."""
    aclose = getattr(events, "aclose", None)
    if aclose is None:
        return
    try:
        await aclose()
    except Exception:
        _log.exception("closing a chat stream failed")
