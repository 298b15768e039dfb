"""One chat job's stream from the worker, with its clock, admission ticket,
metrics and span: what the chat and responses endpoints both read events through."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

from service import telemetry
from service.api.admission import Admission
from service.contract import ChatDelta, ChatEvent, ChatUsage, close_events
from service.errors import DeadlineExceeded, ServiceError, WorkerFailed, error_from_kind
from service.metrics import Metrics

_log = logging.getLogger(__name__)


class Run:
    """One request's stream from the worker, with its clock, ticket and metrics."""

    def __init__(
        self,
        events: AsyncIterator[ChatEvent],
        ticket: Admission,
        metrics: Metrics,
        deadline: float,
        timeout_s: float,
        model: str,
        endpoint: str = "chat",
    ) -> None:
        self.events = events
        self.endpoint = endpoint
        self.ticket = ticket
        self.metrics = metrics
        self.model = model
        self.deadline = deadline
        self.timeout_s = timeout_s
        self.start = time.perf_counter()
        self.last_token: float | None = None
        # The labelled histogram once per stream, not a label lookup per token.
        self._inter_token = metrics.inter_token_latency.labels(model=model)
        self.outcome = "aborted"  # until it ends one way or another
        # Ended by close(), not a `with`: the stream outlives the handler's context.
        self.span = telemetry.start_span("stream", model=model)

    async def next(self) -> ChatEvent | None:
        """The next event; a worker error event is raised as its ServiceError."""
        try:
            async with asyncio.timeout_at(self.deadline):
                event = await anext(self.events)
        except StopAsyncIteration:
            return None
        except TimeoutError as exc:
            self.outcome = "timeout"
            raise DeadlineExceeded(f"Request timed out after {self.timeout_s:g}s.") from exc
        except ServiceError:
            raise
        except Exception as exc:  # an unknown worker failure: log it, hide its text
            _log.exception("worker stream failed")
            raise WorkerFailed("The worker failed while generating.") from exc
        if isinstance(event, ChatDelta) and event.text:
            self._observe_token()
        elif not isinstance(event, ChatDelta | ChatUsage):
            raise error_from_kind(event.kind, event.message, param=event.param, code=event.code)
        if isinstance(event, ChatUsage):
            self.ticket.record_usage(event.prompt_tokens, event.completion_tokens)
            self.metrics.prompt_tokens.labels(model=self.model).inc(event.prompt_tokens)
            self.metrics.generation_tokens.labels(model=self.model).inc(event.completion_tokens)
        return event

    def _observe_token(self) -> None:
        t = time.perf_counter()
        if self.last_token is None:
            self.span.add_event("first_token")
            self.metrics.time_to_first_token.labels(model=self.model).observe(t - self.start)
            self.ticket.started()
        else:
            self._inter_token.observe(t - self.last_token)
        self.last_token = t

    def errored(self) -> None:
        """An error ended the read: the outcome is `error`, unless the deadline named it."""
        if self.outcome != "timeout":
            self.outcome = "error"

    def stream_failed(self, exc: Exception) -> None:
        """A streamed reply failed mid-way: its outcome, and a log line if unexpected."""
        if not isinstance(exc, ServiceError):
            _log.exception("%s stream failed", self.endpoint)
        self.outcome = "timeout" if isinstance(exc, DeadlineExceeded) else "error"

    async def close(self) -> None:
        await close_events(self.events)
        self.metrics.e2e_request_latency.labels(
            endpoint=self.endpoint, outcome=self.outcome, model=self.model
        ).observe(time.perf_counter() - self.start)
        self.ticket.release()
        self.span.set_attribute("outcome", self.outcome)
        self.span.end()
