"""`HTTPWorkerClient`: one remote worker over the internal API, as a `Worker`.

httpx and JSON errors are mapped here, once: a worker that cannot be reached
is `Unavailable` (the pool then tries another), a broken stream is
`WorkerFailed`, and an error the worker reported is rebuilt as the same
`service.errors` class. Closing the chat iterator closes the HTTP stream, which
the worker sees as a disconnect and aborts the generation.

With tracing on, the client's calls carry the trace context (`traceparent`),
so the worker's spans join the request's trace; the readiness and model polls
are left untraced.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any, TypeVar

import httpx
from pydantic import TypeAdapter, ValidationError

from service import telemetry
from service.contract import (
    JOB_FRAME_TYPE,
    ChatEvent,
    ChatJob,
    EmbedJob,
    EmbedResult,
    ServedModel,
    Worker,
    WorkerReadiness,
    job_frame,
)
from service.errors import (
    DeadlineExceeded,
    ServerBusy,
    ServiceError,
    Unavailable,
    WorkerFailed,
    error_from_kind,
)

T = TypeVar("T")
# Control calls (models, readiness) answer at once on a live worker; generation
# calls have no read timeout, the gateway's per-request deadline bounds them.
_CONTROL_TIMEOUT = httpx.Timeout(10.0)
_EVENT: TypeAdapter[ChatEvent] = TypeAdapter(ChatEvent)
_SEND_SLICE_BYTES = 1 << 20
_MODELS: TypeAdapter[list[ServedModel]] = TypeAdapter(list[ServedModel])


class HTTPWorkerClient(Worker):
    def __init__(
        self,
        base_url: str,
        *,
        connect_timeout_s: float = 5.0,
        read_timeout_s: float | None = None,
        token: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        # No read timeout by default: a long generation may pause between tokens;
        # the gateway's per-request deadline bounds it instead.
        self._client = httpx.AsyncClient(
            base_url=self.base_url,
            transport=transport,
            trust_env=False,
            timeout=httpx.Timeout(read_timeout_s, connect=connect_timeout_s),
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=64),
            headers={"Authorization": f"Bearer {token}"} if token else None,
        )
        telemetry.instrument_httpx(self._client)

    def __repr__(self) -> str:
        return f"HTTPWorkerClient({self.base_url!r})"

    async def chat(self, job: ChatJob) -> AsyncGenerator[ChatEvent, None]:
        request = self._client.build_request("POST", "/internal/chat", **_framed(job))
        try:
            response = await self._client.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise _unreachable(self.base_url, exc) from exc
        try:
            if response.status_code != 200:
                await response.aread()
                raise _from_error_response(response)
            async for line in response.aiter_lines():
                if line.strip():
                    yield _parse_event(line)
        except httpx.HTTPError as exc:
            raise WorkerFailed("The worker stream broke off.") from exc
        finally:
            await response.aclose()

    async def embed(self, job: EmbedJob) -> EmbedResult:
        response = await self._request("POST", "/internal/embed", **_framed(job))
        return _validate(EmbedResult.model_validate_json, response.content)

    async def models(self) -> list[ServedModel]:
        with telemetry.untraced():
            response = await self._request("GET", "/internal/models", timeout=_CONTROL_TIMEOUT)
        return _validate(_MODELS.validate_json, response.content)

    async def readiness(self) -> WorkerReadiness:
        try:
            with telemetry.untraced():
                response = await self._client.get("/internal/ready", timeout=_CONTROL_TIMEOUT)
        except httpx.HTTPError as exc:
            raise _unreachable(self.base_url, exc) from exc
        if response.status_code not in (200, 503):
            raise _from_error_response(response)
        return _validate(WorkerReadiness.model_validate_json, response.content)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = await self._client.request(method, path, **kwargs)
        except httpx.TimeoutException as exc:
            raise DeadlineExceeded(f"The worker at {self.base_url} timed out.") from exc
        except httpx.HTTPError as exc:
            raise _unreachable(self.base_url, exc) from exc
        if response.status_code != 200:
            raise _from_error_response(response)
        return response


def _framed(job: ChatJob | EmbedJob) -> dict[str, Any]:
    """Request arguments that send `job` as a job frame, its media bytes uncopied."""
    chunks = job_frame(job)

    async def body() -> AsyncIterator[bytes]:
        # In slices: the transport buffers what the socket has not taken yet, and a
        # whole 30 MB item would sit there as one more copy of the media.
        for chunk in chunks:
            view = memoryview(chunk)
            for start in range(0, len(view), _SEND_SLICE_BYTES):
                yield view[start : start + _SEND_SLICE_BYTES]

    headers = {
        "Content-Type": JOB_FRAME_TYPE,
        # Given up front, so the worker can refuse a frame over its memory budget unread.
        "Content-Length": str(sum(len(chunk) for chunk in chunks)),
        "X-Request-ID": job.request_id,
    }
    return {"content": body(), "headers": headers}


def _unreachable(url: str, exc: httpx.HTTPError) -> Unavailable:
    return Unavailable(f"Worker {url} is unreachable ({type(exc).__name__}).")


def _parse_event(line: str) -> ChatEvent:
    try:
        return _EVENT.validate_json(line)
    except ValidationError as exc:
        raise WorkerFailed("The worker sent a malformed event.") from exc


def _from_error_response(response: httpx.Response) -> ServiceError:
    if response.status_code == 401:
        # The client's own key was fine (the gateway checked it): this is our misconfiguration.
        return Unavailable(
            f"The worker at {response.url.host}:{response.url.port} refused the gateway"
            " (worker_token differs)."
        )
    try:
        body = json.loads(response.content)
        error = error_from_kind(
            str(body["kind"]), str(body["message"]), param=body.get("param"), code=body.get("code")
        )
    except (ValueError, KeyError, TypeError):
        error = WorkerFailed(f"The worker answered HTTP {response.status_code}.")
        if response.status_code == 503:
            error = Unavailable("The worker is not ready.")
    if isinstance(error, ServerBusy):
        retry_after = response.headers.get("retry-after", "")
        if retry_after.isdigit():
            error.retry_after = float(retry_after)
    return error


def _validate(parse: Callable[[bytes], T], content: bytes) -> T:
    try:
        return parse(content)
    except ValidationError as exc:
        raise WorkerFailed("The worker sent a malformed answer.") from exc
