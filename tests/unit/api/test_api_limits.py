"""Auth, request ids, body cap, admission (429), health, metrics, models."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import openai
import pytest

from service.contract import ChatDelta, ChatEvent, ChatJob
from tests.unit.api.conftest import Gateway, GatewayFactory
from tests.utils.fake_worker import MODEL, ScriptedWorker

USER = [{"role": "user", "content": "hi"}]
KEY = "sk-test-0123456789"


def test_api_keys(gateway_factory: GatewayFactory) -> None:
    with gateway_factory(api_keys=[KEY, "sk-other-0123456789"]) as gw:
        with pytest.raises(openai.AuthenticationError) as info:
            gw.client("sk-wrong-000000000").chat.completions.create(model=MODEL, messages=USER)
        assert info.value.body["type"] == "authentication_error"  # type: ignore[index]
        missing = httpx.get(f"{gw.url}/v1/models")
        assert missing.status_code == 401
        assert missing.json()["error"]["code"] == "invalid_api_key"
        reply = gw.client(KEY).chat.completions.create(model=MODEL, messages=USER)
        assert reply.choices[0].message.content == "echo: hi"
        # Operational routes stay open.
        assert httpx.get(f"{gw.url}/health/live").status_code == 200
        assert httpx.get(f"{gw.url}/health/ready").status_code == 200
        assert httpx.get(f"{gw.url}/metrics").status_code == 200
        assert gw.metric("pandagpt_rejected_requests_total", {"reason": "unauthorized"}) == 2


def test_api_key_file_is_reread(gateway_factory: GatewayFactory, tmp_path: Path) -> None:
    key_file = tmp_path / "keys"
    key_file.write_text("# mounted secret\nsk-first-0123456789\n")
    with gateway_factory(api_key_file=key_file) as gw:
        assert gw.client("sk-first-0123456789").models.list().data[0].id == MODEL
        key_file.write_text("sk-second-0123456789\n")
        os.utime(key_file, (time.time() + 10, time.time() + 10))
        deadline = time.monotonic() + 6
        while time.monotonic() < deadline:
            ok = httpx.get(
                f"{gw.url}/v1/models", headers={"Authorization": "Bearer sk-second-0123456789"}
            )
            if ok.status_code == 200:
                break
            time.sleep(0.2)
        assert ok.status_code == 200
        old = httpx.get(
            f"{gw.url}/v1/models", headers={"Authorization": "Bearer sk-first-0123456789"}
        )
        assert old.status_code == 401


def test_placeholder_key_refused_outside_dev() -> None:
    from pydantic import ValidationError

    from service.config import Settings

    with pytest.raises(ValidationError, match="placeholder"):
        Settings(api_keys=["changeme"], environment="production")


def test_request_ids(gateway: Gateway) -> None:
    given = httpx.get(f"{gateway.url}/health/live", headers={"X-Request-ID": "abc-123.x"})
    assert given.headers["X-Request-ID"] == "abc-123.x"
    made = httpx.get(f"{gateway.url}/health/live")
    assert len(made.headers["X-Request-ID"]) == 32
    hostile = httpx.get(f"{gateway.url}/health/live", headers={"X-Request-ID": "a b\tc"})
    assert hostile.headers["X-Request-ID"] != "a b\tc"
    long = httpx.get(f"{gateway.url}/health/live", headers={"X-Request-ID": "x" * 500})
    assert long.headers["X-Request-ID"] == "x" * 128
    httpx.post(
        f"{gateway.url}/v1/chat/completions",
        json={"messages": USER},
        headers={"X-Request-ID": "req-42"},
    )
    assert gateway.worker.jobs[-1].request_id == "req-42"
    error = httpx.get(f"{gateway.url}/nope", headers={"X-Request-ID": "req-43"})
    assert error.headers["X-Request-ID"] == "req-43"


def test_body_cap_by_header_and_by_counting(gateway_factory: GatewayFactory) -> None:
    with gateway_factory(max_body_bytes=2048) as gw:
        big = {"messages": [{"role": "user", "content": "x" * 4096}]}
        response = httpx.post(f"{gw.url}/v1/chat/completions", json=big)
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "payload_too_large"

        def chunks():  # no Content-Length: chunked transfer, counted while read
            yield b'{"messages": [{"role": "user", "content": "'
            for _ in range(8):
                yield b"y" * 512
            yield b'"}]}'

        chunked = httpx.post(
            f"{gw.url}/v1/chat/completions",
            content=chunks(),
            headers={"Content-Type": "application/json"},
        )
        assert chunked.status_code == 413
        # A lying Content-Length below the cap with a bigger body never gets in either.
        with socket.create_connection(("127.0.0.1", int(gw.url.rsplit(":", 1)[1]))) as sock:
            body = b"z" * 4096
            sock.sendall(
                b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                b"Transfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n"
                + f"{len(body):x}\r\n".encode()
                + body
                + b"\r\n0\r\n\r\n"
            )
            assert b" 413 " in sock.recv(4096).split(b"\r\n", 1)[0] + b" "
        assert gw.metric("pandagpt_rejected_requests_total", {"reason": "body_too_large"}) == 3


def test_queue_full_is_429_with_retry_after(gateway_factory: GatewayFactory) -> None:
    release = threading.Event()

    async def held(job: ChatJob) -> AsyncIterator[ChatEvent]:
        while not release.is_set():
            await asyncio.sleep(0.02)
        yield ChatDelta(index=0, text="done", finish_reason="stop")

    worker = ScriptedWorker(held)
    with gateway_factory(worker, max_concurrent_requests=1, retry_after_s=2) as gw:
        first = threading.Thread(
            target=httpx.post,
            args=(f"{gw.url}/v1/chat/completions",),
            kwargs={"json": {"messages": USER}, "timeout": 10},
        )
        first.start()
        deadline = time.monotonic() + 30
        while not worker.jobs:  # the first request has the only place
            assert time.monotonic() < deadline, "the first request never reached the worker"
            time.sleep(0.02)
        with pytest.raises(openai.RateLimitError) as info:
            gw.client().chat.completions.create(model=MODEL, messages=USER)
        assert info.value.response.headers["Retry-After"] == "2"
        assert info.value.body["type"] == "rate_limit_error"  # type: ignore[index]
        assert gw.metric("pandagpt_requests_waiting") == 1
        release.set()
        first.join(10)
        assert gw.metric("pandagpt_requests_waiting") == 0
        assert gw.client().chat.completions.create(model=MODEL, messages=USER).choices


def test_health_ready_follows_the_worker(gateway_factory: GatewayFactory) -> None:
    worker = ScriptedWorker(ready=False)
    with gateway_factory(worker) as gw:
        response = httpx.get(f"{gw.url}/health/ready")
        assert response.status_code == 503
        assert response.json()["status"] == "not_ready"
        worker.ready = True
        response = httpx.get(f"{gw.url}/health/ready")
        assert response.status_code == 200
        assert response.json()["cache"] == "ok"


def test_models_and_metrics(gateway: Gateway) -> None:
    models = gateway.client().models.list()
    assert [m.id for m in models.data] == [MODEL]
    assert models.data[0].object == "model"
    gateway.client().chat.completions.create(model=MODEL, messages=USER)
    text = httpx.get(f"{gateway.url}/metrics").text
    assert (
        'pandagpt_http_requests_total{method="POST",route="/v1/chat/completions",status="200"} 1.0'
        in text
    )
    labels = f'endpoint="chat",model="{MODEL}",outcome="ok"'
    assert f"pandagpt_e2e_request_latency_seconds_count{{{labels}}} 1.0" in text
    for name in ("pandagpt_time_to_first_token_seconds", "pandagpt_cache_errors_total"):
        assert name in text


def test_metrics_on_own_port(gateway_factory: GatewayFactory) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with gateway_factory(metrics_port=port, host="127.0.0.1") as gw:
        assert httpx.get(f"{gw.url}/metrics").status_code == 404
        assert "pandagpt_http_requests_total" in httpx.get(f"http://127.0.0.1:{port}/metrics").text


def test_playground_and_cors_preflight_stay_open(gateway_factory: GatewayFactory) -> None:
    origin = "https://app.example"
    with gateway_factory(api_keys=[KEY], enable_playground=True, cors_origins=origin) as gw:
        assert httpx.get(f"{gw.url}/").status_code == 200
        preflight = httpx.options(
            f"{gw.url}/v1/chat/completions",
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization,content-type",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == origin
        assert httpx.post(f"{gw.url}/v1/chat/completions", json={}).status_code == 401
