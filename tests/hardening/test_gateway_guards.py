"""Gateway guards added for hardening, on an in-process gateway over a scripted worker:
a request-head deadline (slow-loris headers: the connection is closed), a body read
deadline (slow-loris uploads get 408 and a closed connection), `max_n`, and a
max_tokens beyond the context."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from harness.local_servers import serve_in_thread
from service.api import create_app
from service.config import Settings
from service.contract import ChatEvent, ChatJob
from service.server import header_deadline_protocol
from tests.utils.fake_worker import MODEL, ScriptedWorker, echo_chat


@pytest.fixture(scope="module")
def gateway() -> Iterator[str]:
    settings = Settings(enable_playground=False, log_json=False, body_read_timeout_s=1.0, max_n=4)
    with serve_in_thread(create_app(settings, ScriptedWorker())) as url:
        yield url


def _read_all(sock: socket.socket, limit_s: float) -> tuple[bytes, bool]:
    """Everything the server sends until it closes (True) or `limit_s` passes (False)."""
    sock.settimeout(0.5)
    data = b""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        if not chunk:
            return data, True
        data += chunk
    return data, False


async def slow_echo(job: ChatJob) -> AsyncIterator[ChatEvent]:
    """`echo_chat`, one word every 0.5 s."""
    async for event in echo_chat(job):
        yield event
        await asyncio.sleep(0.5)


@pytest.fixture(scope="module")
def gateway_with_head_deadline() -> Iterator[str]:
    app = create_app(Settings(enable_playground=False, log_json=False), ScriptedWorker(slow_echo))
    with serve_in_thread(app, http=header_deadline_protocol(1.0)) as url:
        yield url


def _trickle_head_until_closed(sock: socket.socket) -> tuple[bool, float]:
    """Start a request head and add a header line every 0.3 s → (closed, seconds taken)."""
    sock.settimeout(0.3)
    sock.sendall(b"GET /health/live HTTP/1.1\r\nHost: x\r\n")
    start = time.monotonic()
    closed = False
    while not closed and time.monotonic() - start < 6:
        try:
            sock.sendall(b"X-Slow: a\r\n")
            closed = sock.recv(1024) == b""
        except TimeoutError:
            continue
        except OSError:
            closed = True
    return closed, time.monotonic() - start


def test_slow_headers_get_the_connection_closed(gateway_with_head_deadline: str) -> None:
    port = int(gateway_with_head_deadline.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port)) as sock:
        closed, elapsed = _trickle_head_until_closed(sock)
    assert closed, "the server kept a connection whose headers never ended"
    assert 0.9 < elapsed < 3.0
    assert httpx.get(f"{gateway_with_head_deadline}/health/live").status_code == 200


def test_slow_headers_on_a_kept_alive_connection_get_it_closed(
    gateway_with_head_deadline: str,
) -> None:
    port = int(gateway_with_head_deadline.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.settimeout(5)
        sock.sendall(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        closed, elapsed = _trickle_head_until_closed(sock)
    assert closed, "the server kept a kept-alive connection whose next head never ended"
    assert 0.9 < elapsed < 3.0


def test_pipelined_slow_head_lets_the_response_before_it_finish(
    gateway_with_head_deadline: str,
) -> None:
    port = int(gateway_with_head_deadline.rsplit(":", 1)[1])
    body = json.dumps(
        {"model": MODEL, "messages": [{"role": "user", "content": "a b c d"}], "stream": True}
    ).encode()
    streamed = (  # 5 words, 0.5 s apart: longer than the 1 s head deadline
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(streamed + b"GET /health/live HTTP/1.1\r\nHost: x\r\n")  # never ends
        data, closed = _read_all(sock, limit_s=10)
    assert data.startswith(b"HTTP/1.1 200")
    assert b"data: [DONE]" in data, "the response was cut short by the next request's deadline"
    assert closed, "the server kept a connection whose pipelined head never ended"


def test_head_deadline_spares_an_idle_keep_alive_connection(
    gateway_with_head_deadline: str,
) -> None:
    port = int(gateway_with_head_deadline.rsplit(":", 1)[1])
    request = b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.settimeout(5)
        sock.sendall(request)
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        time.sleep(1.5)  # past the head deadline, within uvicorn's 5 s keep-alive
        sock.sendall(request)
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")


def test_slow_body_gets_408_and_the_connection_is_closed(gateway: str) -> None:
    port = int(gateway.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port)) as sock:
        head = (
            "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
            "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
        )
        sock.sendall(head.encode() + b'{"model": ')
        start = time.monotonic()
        data, closed = _read_all(sock, 10.0)
        elapsed = time.monotonic() - start
    assert data.startswith(b"HTTP/1.1 408"), data[:200]
    assert b"request_timeout" in data
    assert closed, "the server kept the slow connection open"
    assert 0.9 < elapsed < 5.0


def test_trickled_body_is_bounded_by_a_total_deadline(gateway: str) -> None:
    port = int(gateway.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port)) as sock:
        head = "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n"
        sock.sendall(head.encode())
        start = time.monotonic()
        answer = b""
        for _ in range(40):  # one byte every 0.1 s: each read is quick, the whole is not
            try:
                sock.sendall(b" ")
            except OSError:
                break
            sock.settimeout(0.1)
            try:
                answer += sock.recv(65536)
            except TimeoutError:
                continue
            if answer:
                break
        elapsed = time.monotonic() - start
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert elapsed < 3.0


def test_n_over_max_n_is_400_naming_the_cap(gateway: str) -> None:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "n": 5}
    response = httpx.post(f"{gateway}/v1/chat/completions", json=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "n" and "at most 4" in error["message"]
    body["n"] = 4
    assert httpx.post(f"{gateway}/v1/chat/completions", json=body).status_code == 200


@pytest.mark.parametrize("param", ["max_tokens", "max_completion_tokens"])
def test_max_tokens_beyond_the_context_is_400_naming_the_limit(gateway: str, param: str) -> None:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], param: 2048}
    response = httpx.post(f"{gateway}/v1/chat/completions", json=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == param and error["code"] == "context_length_exceeded"
    assert "2048" in error["message"]  # the scripted worker's context length
    body[param] = 2047
    assert httpx.post(f"{gateway}/v1/chat/completions", json=body).status_code == 200
