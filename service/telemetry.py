"""OpenTelemetry tracing, on only when an OTLP endpoint is configured.

`setup(default_service_name)` runs once in each server process (`serve`,
`gateway`, `worker`). When `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or
`OTEL_EXPORTER_OTLP_ENDPOINT` is set (and `OTEL_SDK_DISABLED` is not true), it
loads the SDK, an OTLP exporter (`OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL`:
`http/protobuf`, the default, or `grpc`) and the redis instrumentation; the
rest is the SDK's own reading of the standard `OTEL_*` variables (service name,
resource attributes, sampler, batch processor, headers, timeouts).

Otherwise nothing of OpenTelemetry is imported, and every helper here is a
check of one module global: `span()` hands back a shared no-op. The request
path calls these helpers, never the OpenTelemetry API directly, so "off" costs
nothing measurable. The encoders cannot import the service: they get their
hooks as an `encoders.micro_batcher.EncoderTracer` (`encoder_tracer()`).

Context travels as W3C `traceparent`: extracted from a client's request by the
ASGI instrumentation, injected into the gateway's calls to workers by the
httpx instrumentation of the worker client (not of the media fetcher: a
third-party media host gets no trace ids).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any

_log = logging.getLogger(__name__)

ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
# Probes and scrapes arrive every few seconds: a trace each would drown the requests.
EXCLUDED_URLS = "/health/.*,/metrics,/internal/ready,/internal/models"
AttributeValue = str | bool | int | float

_tracer: Any = None  # an opentelemetry Tracer once setup() turned tracing on


class _NoSpan:
    """What `span()` and `start_span()` give while tracing is off: does nothing."""

    def __enter__(self) -> _NoSpan:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def set_attribute(self, key: str, value: AttributeValue) -> None:
        return None

    def add_event(self, name: str, attributes: Mapping[str, AttributeValue] | None = None) -> None:
        return None

    def end(self) -> None:
        return None


_NO_SPAN = _NoSpan()


def requested(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether the environment asks for tracing."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    return any(environ.get(name, "").strip() for name in ENDPOINT_VARIABLES)


def enabled() -> bool:
    return _tracer is not None


def setup(default_service_name: str, environ: Mapping[str, str] = os.environ) -> bool:
    """Turn tracing on when the environment asks for it; True if it is on."""
    global _tracer
    if _tracer is not None or not requested(environ):
        return _tracer is not None
    from opentelemetry import trace
    from opentelemetry.instrumentation.redis import RedisInstrumentor
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create()  # OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: default_service_name}))
    provider = TracerProvider(resource=resource)  # sampler from OTEL_TRACES_SAMPLER[_ARG]
    provider.add_span_processor(BatchSpanProcessor(_exporter(environ)))
    trace.set_tracer_provider(provider)
    RedisInstrumentor().instrument(tracer_provider=provider)
    _tracer = trace.get_tracer("pandagpt-serve")
    _log.info(
        "tracing on: %s spans over OTLP (%s)",
        resource.attributes.get(SERVICE_NAME),
        protocol(environ),
    )
    return True


def protocol(environ: Mapping[str, str] = os.environ) -> str:
    value = environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or environ.get(
        "OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"
    )
    return value.strip().lower()


def _exporter(environ: Mapping[str, str]) -> Any:
    """The OTLP span exporter for the configured protocol; it reads its own OTEL_* settings."""
    chosen = protocol(environ)
    if chosen == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    elif chosen == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (  # type: ignore[assignment]
            OTLPSpanExporter,
        )
    else:
        raise ValueError(
            f"OTEL_EXPORTER_OTLP_PROTOCOL is {chosen!r}; this service exports traces over"
            " 'http/protobuf' or 'grpc'."
        )
    return OTLPSpanExporter()


def shutdown() -> None:
    """Flush and stop the exporter (the SDK also does this at interpreter exit)."""
    global _tracer
    if _tracer is None:
        return
    from opentelemetry import trace

    provider = trace.get_tracer_provider()
    if hasattr(provider, "shutdown"):
        provider.shutdown()
    _tracer = None


# --- spans ---


def span(name: str, **attributes: AttributeValue) -> AbstractContextManager[Any]:
    """A child span of the current one, current inside the `with` block. Not across a
    `yield` of an async generator: its context may change between iterations."""
    if _tracer is None:
        return _NO_SPAN
    cm: AbstractContextManager[Any] = _tracer.start_as_current_span(name, attributes=attributes)
    return cm


def start_span(name: str, **attributes: AttributeValue) -> Any:
    """A child span of the current one that the caller ends (`.end()`); for streams."""
    if _tracer is None:
        return _NO_SPAN
    return _tracer.start_span(name, attributes=attributes)


def untraced() -> AbstractContextManager[Any]:
    """No spans, and no context sent, for the calls inside (health polls)."""
    if _tracer is None:
        return _NO_SPAN
    from opentelemetry.instrumentation.utils import suppress_instrumentation

    return suppress_instrumentation()


def log_ids() -> tuple[str, str] | None:
    """(trace_id, span_id) of the current span in hex, for log lines."""
    if _tracer is None:
        return None
    from opentelemetry import trace

    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return None
    return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")


# --- instrumentation of the server apps and the worker client ---


def instrument_app(app: Any) -> None:
    """The request span of every API call (W3C `traceparent` continued), probes excepted."""
    if _tracer is None:
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    # One span per ASGI message would be one per streamed token.
    FastAPIInstrumentor.instrument_app(
        app, excluded_urls=EXCLUDED_URLS, exclude_spans=["receive", "send"]
    )


def instrument_httpx(client: Any) -> None:
    """Client spans for `client`'s calls, carrying the context in `traceparent`."""
    if _tracer is None:
        return
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    HTTPXClientInstrumentor.instrument_client(client)


# --- the encoders' hooks (encoders.micro_batcher.EncoderTracer) ---


class _EncoderTracer:
    def span(
        self, name: str, attributes: Mapping[str, AttributeValue]
    ) -> AbstractContextManager[Any]:
        return span(name, **attributes)

    def capture(self) -> object:
        from opentelemetry import trace

        return trace.get_current_span().get_span_context()

    def linked_span(
        self, name: str, attributes: Mapping[str, AttributeValue], callers: Sequence[object]
    ) -> AbstractContextManager[Any]:
        return _linked_span(name, attributes, callers)


@contextmanager
def _linked_span(
    name: str, attributes: Mapping[str, AttributeValue], callers: Sequence[object]
) -> Iterator[Any]:
    """A span for work done for several requests at once: a child of the first
    request (so it shows in that trace), linked to every request it served."""
    from opentelemetry import trace
    from opentelemetry.context import Context
    from opentelemetry.trace import Link, NonRecordingSpan, SpanContext

    contexts = [c for c in callers if isinstance(c, SpanContext) and c.is_valid]
    # Never the batcher task's own context: it was copied from whichever request
    # happened to start the task.
    parent = Context()
    if contexts:
        parent = trace.set_span_in_context(NonRecordingSpan(contexts[0]))
    with _tracer.start_as_current_span(
        name,
        context=parent,
        attributes=dict(attributes),
        links=[Link(c) for c in contexts],
    ) as current:
        yield current


def encoder_tracer() -> _EncoderTracer | None:
    """Hooks for `encoders.micro_batcher.Encoder`, or None while tracing is off."""
    return _EncoderTracer() if _tracer is not None else None
