"""service.telemetry: off without an OTLP endpoint (nothing of OpenTelemetry
imported), on with one. The gateway app runs in a child process each time, so
the global tracer provider and `sys.modules` start clean."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from service import telemetry
from tests.utils.otlp import otlp_receiver

REPO = Path(__file__).resolve().parents[2]

# The gateway's path through a chat request: settings, logging, tracing setup, the
# app over a scripted worker, a worker client (as `pandagpt gateway` builds them).
GATEWAY_REQUEST = r"""
import asyncio, json, logging, sys

def otel_modules():
    return {m for m in sys.modules if m.split(".")[0] == "opentelemetry"}

# redis-py 8 imports the metrics SDK itself when it is installed (its own
# observability module, at import time): that much is loaded before any of ours.
import redis.asyncio
baseline = otel_modules()

import httpx
from service import telemetry
from service.api import create_app
from service.config import Settings
from service.gateway import HTTPWorkerClient
from service.http.logging import configure_logging
from tests.utils.fake_worker import MODEL, ScriptedWorker

configure_logging("info")
on = telemetry.setup("pandagpt-gateway")
HTTPWorkerClient("http://127.0.0.1:9")  # built, never called
app = create_app(Settings(), ScriptedWorker())

async def main():
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        reply = await client.post(
            "/v1/chat/completions",
            json={"model": MODEL, "messages": [{"role": "user", "content": "hi there"}]},
            headers={"traceparent": sys.argv[1]} if len(sys.argv) > 1 else {},
        )
        assert reply.status_code == 200, reply.text
        logging.getLogger("probe").info("after the request")

asyncio.run(main())
telemetry.shutdown()
loaded = otel_modules()
print(json.dumps({"on": on, "loaded": sorted(loaded), "ours": sorted(loaded - baseline)}))
"""


def run_gateway_request(env: dict[str, str], *args: str) -> tuple[dict[str, object], str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PANDAGPT_"))}
    result = subprocess.run(
        [sys.executable, "-c", GATEWAY_REQUEST, *args],
        cwd=REPO,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout.strip().splitlines()[-1]), result.stderr


def test_off_without_endpoint_imports_no_opentelemetry() -> None:
    report, logs = run_gateway_request({})
    assert report["on"] is False
    assert report["ours"] == []  # nothing beyond what redis-py itself imports
    for part in (
        "opentelemetry.sdk.trace",
        "opentelemetry.exporter",
        "opentelemetry.instrumentation",
    ):
        assert not [m for m in report["loaded"] if m.startswith(part)]  # type: ignore[union-attr]
    assert "trace_id" not in logs


def test_on_exports_spans_that_continue_the_clients_trace() -> None:
    trace_id, parent = secrets.token_hex(16), secrets.token_hex(8)
    with otlp_receiver() as (receiver, endpoint):
        report, logs = run_gateway_request(
            {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_RESOURCE_ATTRIBUTES": "team=ml"},
            f"00-{trace_id}-{parent}-01",
        )
        spans = receiver.snapshot()  # shutdown() flushed before the child exited
    assert report["on"] is True
    assert "opentelemetry.sdk.trace" in report["loaded"]  # type: ignore[operator]
    mine = [s for s in spans if s.trace_id == trace_id]
    assert {s.service for s in mine} == {"pandagpt-gateway"}
    assert {"admission", "job.build", "stream"} <= {s.name for s in mine}
    (root,) = [s for s in mine if s.parent_id == parent]
    assert root.name == "POST /v1/chat/completions"
    stream = next(s for s in mine if s.name == "stream")
    assert stream.attributes["outcome"] == "ok"
    assert "first_token" in stream.events
    records = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
    access = [r for r in records if r.get("logger") == "service.access"]
    assert access and access[0]["trace_id"] == trace_id
    assert access[0]["span_id"] in {s.span_id for s in mine}


def test_sampler_from_the_environment() -> None:
    """OTEL_TRACES_SAMPLER is the SDK's: always_off exports nothing, even for a sampled parent."""
    with otlp_receiver() as (receiver, endpoint):
        report, _ = run_gateway_request(
            {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_TRACES_SAMPLER": "always_off"},
            f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01",
        )
        assert report["on"] is True
        assert receiver.snapshot() == []


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "  "}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"}, False),
    ],
)
def test_requested_by_the_standard_variables(env: dict[str, str], expected: bool) -> None:
    assert telemetry.requested(env) is expected


def test_exporter_follows_the_protocol() -> None:
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as Grpc
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as Http

    assert isinstance(telemetry._exporter({}), Http)
    assert isinstance(telemetry._exporter({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}), Grpc)
    traces_only = {
        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
    }
    assert isinstance(telemetry._exporter(traces_only), Http)
    with pytest.raises(ValueError, match="http/protobuf"):
        telemetry._exporter({"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"})
