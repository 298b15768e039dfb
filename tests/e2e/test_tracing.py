"""Tracing end to end: a worker and a gateway (real processes, the machine's Redis)
export over OTLP/HTTP to a receiver in this test; one client request, sent with
its own W3C `traceparent`, must come back as one trace across both processes,
and their log lines must carry its ids. A request without one must too, in a
trace of its own that the gateway starts."""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import openai
import pytest

from harness.deployments import WorkerSpec, split_deployment
from harness.local_servers import media_server
from harness.processes import Process, base_env, free_port, start_pandagpt
from tests.utils.media import MEDIA_DIR, image_part, user
from tests.utils.otlp import OtlpReceiver, ReceivedSpan, otlp_grpc_receiver, otlp_receiver

pytestmark = pytest.mark.slow

API_KEY = "tracing-e2e-key-0123456789abcdef"
OTEL = {
    "OTEL_BSP_SCHEDULE_DELAY": "100",  # export within a tenth of a second, not five
    "OTEL_TRACES_SAMPLER": "parentbased_always_on",
}
GATEWAY_SPANS = {"auth", "admission", "media.fetch", "job.build", "stream"}
WORKER_SPANS = {
    "engine.queue",
    "media.feature",
    "cache.get",
    "encoder.preprocess",
    "encoder.batch",
    "prompt.build",
    "engine.prefill",
    "engine.decode",
    "stream",
}


@dataclass
class Traced:
    gateway: str
    worker: str
    media: str
    receiver: OtlpReceiver
    procs: dict[str, Process]


@pytest.fixture(scope="module")
def traced(demo_model_dir: Path, e2e_logs: Path) -> Iterator[Traced]:
    with (
        otlp_receiver() as (receiver, endpoint),
        media_server(MEDIA_DIR) as media,
        split_deployment(
            demo_model_dir,
            e2e_logs,
            workers=[WorkerSpec("worker")],
            redis_url="redis://127.0.0.1:6379/0",
            cache_prefix=f"pandagpt-tracing-{uuid.uuid4().hex[:12]}:",
            worker_env={
                "PANDAGPT_ENFORCE_EAGER": "true",
                "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
                **OTEL,
            },
            gateway_env={
                "PANDAGPT_API_KEYS": API_KEY,
                "PANDAGPT_MEDIA_ALLOW_NETWORKS": "127.0.0.1/32",
                # The traces-only variable, with its full path, works as well.
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"{endpoint}/v1/traces",
                "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
                **OTEL,
            },
            prefix="traced-",
        ) as split,
    ):
        yield Traced(split.gateway, split.workers["worker"], media, receiver, split.procs)


def _in_trace(spans: list[ReceivedSpan], trace_id: str) -> list[ReceivedSpan]:
    return [s for s in spans if s.trace_id == trace_id]


def _log_records(path: Path) -> list[dict[str, object]]:
    records = []
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            try:
                records.append(json.loads(line))
            except ValueError:
                continue
    return records


def test_one_trace_spans_gateway_and_worker(traced: Traced) -> None:
    trace_id, client_span = secrets.token_hex(16), secrets.token_hex(8)
    client = openai.OpenAI(base_url=f"{traced.gateway}/v1", api_key=API_KEY, max_retries=0)
    model = client.models.list().data[0].id
    stream = client.chat.completions.create(
        model=model,
        messages=[user("What is this?", image_part(f"{traced.media}/bird_image.jpg"))],
        max_tokens=4,
        stream=True,
        extra_headers={"traceparent": f"00-{trace_id}-{client_span}-01"},
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) is not None

    def complete(spans: list[ReceivedSpan]) -> bool:
        names = {(s.service, s.name) for s in _in_trace(spans, trace_id)}
        return ("pandagpt-gateway", "stream") in names and ("pandagpt-worker", "stream") in names

    spans = _in_trace(traced.receiver.wait_for(complete, timeout=60), trace_id)
    by_service: dict[str, set[str]] = {}
    for s in spans:
        by_service.setdefault(s.service, set()).add(s.name)
    assert by_service.get("pandagpt-gateway", set()) >= GATEWAY_SPANS, by_service
    assert by_service.get("pandagpt-worker", set()) >= WORKER_SPANS, by_service

    # The client's traceparent is continued: the gateway's request span is its child.
    ids = {s.span_id: s for s in spans}
    gateway_root = [
        s for s in spans if s.service == "pandagpt-gateway" and s.parent_id == client_span
    ]
    assert [s.name for s in gateway_root] == ["POST /v1/chat/completions"], gateway_root
    # Every other span hangs off a span of this trace: no orphan between the processes.
    for s in spans:
        assert s.parent_id == client_span or s.parent_id in ids, s
    # The worker's request span is a child of a gateway span (the context crossed HTTP).
    worker_root = [s for s in spans if s.service == "pandagpt-worker" and s.name.startswith("POST")]
    assert worker_root and ids[worker_root[0].parent_id].service == "pandagpt-gateway"
    # The encoder batch is linked to the request whose item it holds.
    feature = next(s for s in spans if s.name == "media.feature")
    batch = next(s for s in spans if s.name == "encoder.batch")
    assert (trace_id, feature.span_id) in batch.links
    assert batch.attributes["batch_size"] == 1
    cache = next(s for s in spans if s.name == "cache.get")
    assert cache.attributes["hit"] is False  # a fresh cache prefix

    # Log lines of both processes carry the trace's ids.
    for name in ("traced-gateway", "traced-worker"):
        proc = traced.procs["gateway" if name == "traced-gateway" else "worker"]
        records = [r for r in _log_records(proc.log_path) if r.get("trace_id") == trace_id]
        assert records, f"no log line of {name} carries trace_id {trace_id}"
        assert all(str(r["span_id"]) in ids for r in records), records


def test_untraced_request_starts_its_own_trace(traced: Traced) -> None:
    """Without a traceparent the gateway starts a trace, and the worker joins it.

    After the test above on purpose: its job frame (an image) is larger than
    uvicorn's read buffer, which once left the worker's kept-alive connection
    in that request's context; this request's worker span then continued the
    old trace instead of its `traceparent` (see service.server)."""
    client = openai.OpenAI(base_url=f"{traced.gateway}/v1", api_key=API_KEY, max_retries=0)
    model = client.models.list().data[0].id
    before = {s.trace_id for s in traced.receiver.snapshot()}
    reply = client.chat.completions.create(model=model, messages=[user("Hello")], max_tokens=2)
    assert reply.choices[0].message.content is not None

    def roots(spans: list[ReceivedSpan]) -> list[ReceivedSpan]:
        """The gateway's request span of this chat: the root of a trace new since `before`."""
        return [
            s
            for s in spans
            if s.trace_id not in before
            and s.parent_id == ""
            and (s.service, s.name) == ("pandagpt-gateway", "POST /v1/chat/completions")
        ]

    def complete(spans: list[ReceivedSpan]) -> bool:
        # Each process exports its spans in the order they end, and a request span
        # ends last: once both are in, the whole trace is.
        found = roots(spans)
        names = {(s.service, s.name) for s in spans if found and s.trace_id == found[0].trace_id}
        return {("pandagpt-worker", "POST /internal/chat"), ("pandagpt-worker", "stream")} <= names

    spans = traced.receiver.wait_for(complete, timeout=60)
    found = roots(spans)
    assert len(found) == 1, [(s.service, s.name) for s in spans if s.trace_id not in before]
    trace = _in_trace(spans, found[0].trace_id)
    names = {(s.service, s.name) for s in trace}
    assert complete(spans), [
        (s.service, s.name, s.trace_id[:8], s.span_id[:8], s.parent_id[:8])
        for s in spans
        if s.trace_id not in before
    ]
    assert {("pandagpt-gateway", n) for n in ("auth", "admission", "job.build", "stream")} <= names
    ids = {s.span_id: s for s in trace}
    # One tree: every span but the root hangs off a span of this trace.
    assert all(s.parent_id in ids for s in trace if s is not found[0]), trace
    # The worker's request span continues the gateway's call to it.
    (worker_root,) = [
        s for s in trace if s.service == "pandagpt-worker" and s.name.startswith("POST")
    ]
    caller = ids[worker_root.parent_id]
    assert caller.service == "pandagpt-gateway" and caller.name == "POST", caller
    assert str(caller.attributes.get("http.url", caller.attributes.get("url.full"))).endswith(
        "/internal/chat"
    ), caller


def test_a_gateway_exports_over_grpc(traced: Traced, e2e_logs: Path) -> None:
    """`OTEL_EXPORTER_OTLP_PROTOCOL=grpc`: a second gateway, on the same worker, sends its
    spans to a gRPC receiver; the worker's, in the same trace, still arrive over HTTP."""
    with otlp_grpc_receiver() as (receiver, endpoint):
        port = free_port()
        gateway = start_pandagpt(
            "traced-gateway-grpc",
            ["gateway", "--worker-url", traced.worker, "--host", "127.0.0.1"],
            port=port,
            env=base_env(
                PANDAGPT_API_KEYS=API_KEY,
                OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
                OTEL_EXPORTER_OTLP_PROTOCOL="grpc",
                OTEL_EXPORTER_OTLP_INSECURE="true",
                **OTEL,
            ),
            log_dir=e2e_logs,
            timeout=60,
        )
        try:
            trace_id = secrets.token_hex(16)
            client = openai.OpenAI(
                base_url=f"http://127.0.0.1:{port}/v1", api_key=API_KEY, max_retries=0
            )
            reply = client.chat.completions.create(
                model=client.models.list().data[0].id,
                messages=[user("Say hello.")],
                max_tokens=2,
                extra_headers={"traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"},
            )
            assert reply.choices[0].message.content is not None

            def gateway_done(spans: list[ReceivedSpan]) -> bool:
                return "stream" in {s.name for s in _in_trace(spans, trace_id)}

            spans = _in_trace(receiver.wait_for(gateway_done), trace_id)
            assert {s.service for s in spans} == {"pandagpt-gateway"}
            assert {"auth", "admission", "job.build", "stream"} <= {s.name for s in spans}

            def worker_done(spans: list[ReceivedSpan]) -> bool:
                return any(s.service == "pandagpt-worker" for s in _in_trace(spans, trace_id))

            worker_spans = _in_trace(traced.receiver.wait_for(worker_done), trace_id)
            assert "engine.decode" in {s.name for s in worker_spans}
            gateway_ids = {s.span_id for s in spans}
            assert any(s.parent_id in gateway_ids for s in worker_spans)
        finally:
            gateway.stop(timeout=30)
