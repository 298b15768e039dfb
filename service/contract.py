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

import base64
import logging
import struct
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, SerializationInfo, field_serializer

_log = logging.getLogger(__name__)

Modality = Literal["image", "video", "audio", "thermal", "depth", "imu"]
FinishReason = Literal["stop", "length", "abort", "error"]


class MediaItem(BaseModel):
    # Media bytes are binary: pydantic's JSON default (utf-8) would fail on them.
    model_config = ConfigDict(ser_json_bytes="base64", val_json_bytes="base64")

    modality: Modality
    # base64 in plain JSON; left out (empty) in a job frame, which carries the bytes raw.
    # Empty: a reference to a feature the worker's embedding cache holds (media of an
    # earlier turn of a stored response); a miss is an `InvalidRequest` naming
    # `previous_response_id`, code `media_evicted`.
    data: bytes = Field(repr=False)
    sha256: str

    @field_serializer("data", when_used="json")
    def _data_in_json(self, data: bytes, info: SerializationInfo) -> str:
        if info.context and info.context.get("media_apart"):
            return ""
        return base64.b64encode(data).decode()


class UserTurn(BaseModel):
    """One human turn: its text, and the media it carried (in order)."""

    text: str
    media: list[MediaItem] = Field(default_factory=list)


class ChatTurn(BaseModel):
    user: UserTurn
    assistant: str | None = None  # None only for the last, unanswered turn


class OutputConstraint(BaseModel):
    """What every choice's text must match, enforced token by token by the engine's
    grammar (vLLM structured outputs). Exactly one of the spec fields is set, as
    `kind` says; `param` is the request field it came from, named in a 400."""

    kind: Literal["json_object", "json_schema", "regex", "choice", "structural_tag"]
    json_schema: dict[str, Any] | None = None
    regex: str | None = None
    choice: list[str] | None = None
    structural_tag: str | None = None  # vLLM's structural-tag JSON (tool calls, "auto")
    param: str = "response_format"


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
    constraint: OutputConstraint | None = None  # structured outputs; None = free text


class ChatJob(BaseModel):
    request_id: str
    model: str
    system: str | None = None
    turns: list[ChatTurn]
    sampling: SamplingSettings = Field(default_factory=SamplingSettings)
    # Lower first: orders the worker's slot queue, and vLLM's scheduler under its
    # `priority` policy (settings.scheduling_policy).
    priority: int = 0

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


JobT = TypeVar("JobT", ChatJob, EmbedJob)


# --- the job frame: how a job crosses the internal HTTP API ---
#
# JSON would carry each media item as base64: a third more bytes, and a string as
# large as the media to build and parse on both sides. A frame is the job's JSON
# with the media left out, then the media bytes as they are:
#
#   b"PGJ1" | u32 header length | header (job JSON) | u32 item count
#           | u64 size per item | the items' bytes, in `media_items` order
JOB_FRAME_TYPE = "application/x-pandagpt-job"
_FRAME_MAGIC = b"PGJ1"
_U32, _U64 = struct.Struct(">I"), struct.Struct(">Q")


def media_items(job: ChatJob | EmbedJob) -> list[MediaItem]:
    if isinstance(job, ChatJob):
        return job.media()
    return [item for item in job.inputs if isinstance(item, MediaItem)]


def job_frame(job: ChatJob | EmbedJob) -> list[bytes]:
    """The frame as chunks to send one after another (the media are not copied)."""
    items = media_items(job)
    header = job.model_dump_json(context={"media_apart": True}).encode()
    sizes = b"".join(_U64.pack(len(item.data)) for item in items)
    head = [_FRAME_MAGIC, _U32.pack(len(header)), header, _U32.pack(len(items)), sizes]
    return [b"".join(head), *(item.data for item in items)]


def read_job_frame(frame: bytes, kind: type[JobT]) -> JobT:
    """The job in `frame`; `ValueError` (pydantic's `ValidationError` is one) if malformed."""
    if frame[:4] != _FRAME_MAGIC:
        raise ValueError("not a job frame")
    try:
        (header_len,) = _U32.unpack_from(frame, 4)
        position = 8 + header_len
        job = kind.model_validate_json(frame[8:position])
        items = media_items(job)
        (count,) = _U32.unpack_from(frame, position)
        if count != len(items):
            raise ValueError(f"the frame has {count} media items, its job {len(items)}")
        sizes = [_U64.unpack_from(frame, position + 4 + 8 * i)[0] for i in range(count)]
    except struct.error as exc:
        raise ValueError("the job frame is cut short") from exc
    position += 4 + 8 * count
    if position + sum(sizes) != len(frame):
        raise ValueError("the frame's length does not match its media sizes")
    for item, size in zip(items, sizes, strict=True):
        item.data = frame[position : position + size]
        position += size
    return job


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
