"""Limits on the running all-in-one service (see conftest for the tight settings):
body cap, media item count, context length, max_tokens, n, slow uploads, and more
concurrent streams than the worker queues."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from harness.probes import readiness, wait_until_idle
from tests.hardening.conftest import RecordProperty, Service, assert_serves, chat_body
from tests.utils.media import data_url, image_part, text_part

pytestmark = pytest.mark.slow

MAX_BODY = 16 * 2**20


def _post(service: Service, body: object) -> httpx.Response:
    with service.client() as client:
        return client.post("/v1/chat/completions", json=body)


def _error(response: httpx.Response) -> dict[str, str]:
    error: dict[str, str] = response.json()["error"]
    return error


def test_body_over_the_cap_is_413(service: Service) -> None:
    huge = chat_body(service.model, "x" * (MAX_BODY + 1024))
    response = _post(service, huge)
    assert response.status_code == 413
    assert _error(response)["code"] == "payload_too_large"

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while reading
        yield b'{"model": "m", "messages": [{"role": "user", "content": "'
        for _ in range(17):
            yield b"y" * 2**20

    with service.client() as client:
        chunked = client.post(
            "/v1/chat/completions", content=chunks(), headers={"Content-Type": "application/json"}
        )
    assert chunked.status_code == 413
    assert_serves(service)


def test_too_many_media_items_is_400_naming_the_limit(service: Service) -> None:
    image = image_part(data_url("bird_image.jpg"))
    response = _post(service, chat_body(service.model, [text_part("What?"), *[image] * 9]))
    assert response.status_code == 400
    assert "At most 8 media items" in _error(response)["message"]


def test_prompt_longer_than_the_context_is_400_naming_the_limit(service: Service) -> None:
    response = _post(service, chat_body(service.model, "hello " * 3000, max_tokens=4))
    assert response.status_code == 400
    error = _error(response)
    assert (error["code"], error["param"]) == ("context_length_exceeded", "messages")
    assert "1024" in error["message"]


@pytest.mark.parametrize("param", ["max_tokens", "max_completion_tokens"])
def test_max_tokens_beyond_the_context_is_400(service: Service, param: str) -> None:
    response = _post(service, chat_body(service.model, "hi", **{param: 5000}))
    assert response.status_code == 400
    error = _error(response)
    assert (error["code"], error["param"]) == ("context_length_exceeded", param)
    assert "1024" in error["message"]


def test_n_beyond_the_cap_is_400(service: Service) -> None:
    response = _post(service, chat_body(service.model, "hi", n=5, max_tokens=2))
    assert response.status_code == 400
    assert _error(response)["param"] == "n" and "at most 4" in _error(response)["message"]
    assert _post(service, chat_body(service.model, "hi", n=4, max_tokens=2)).status_code == 200


def _port(service: Service) -> int:
    return int(service.url.rsplit(":", 1)[1])


def test_slow_loris_upload_is_timed_out_and_closed(service: Service) -> None:
    results: list[tuple[bytes, bool, float]] = []
    socks = [socket.create_connection(("127.0.0.1", _port(service))) for _ in range(8)]
    try:
        head = (
            "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
            f"Authorization: {service.headers['Authorization']}\r\n"
            "Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
        )
        for sock in socks:
            sock.sendall(head.encode() + b'{"model": "')
        start = time.monotonic()
        for sock in socks:
            sock.settimeout(0.5)
            data, closed = b"", False
            while time.monotonic() - start < 15:
                try:
                    chunk = sock.recv(65536)
                except TimeoutError:
                    continue
                if not chunk:
                    closed = True
                    break
                data += chunk
            results.append((data, closed, time.monotonic() - start))
    finally:
        for sock in socks:
            sock.close()
    print(f"slow-loris: 8 connections answered 408 and closed in {max(r[2] for r in results):.1f}s")
    for data, closed, elapsed in results:
        assert data.startswith(b"HTTP/1.1 408"), data[:200]
        assert closed and elapsed < 10
    assert_serves(service)


async def _stream(client: httpx.AsyncClient, model: str, max_tokens: int) -> tuple[int, str, str]:
    body = chat_body(model, "Tell me a story", max_tokens=max_tokens, ignore_eos=True, stream=True)
    async with client.stream("POST", "/v1/chat/completions", json=body) as response:
        text = "".join([line async for line in response.aiter_lines()])
        return response.status_code, response.headers.get("retry-after", ""), text


def _worker_full(service: Service) -> bool:
    state = readiness(service.url)
    return (state["running"], state["waiting"]) == (2, 2)


async def _beyond_the_queue(
    service: Service, extra: int
) -> tuple[list[tuple[int, str, str]], list[tuple[int, str, str]]]:
    """Four long streams take the 2 running + 2 waiting places; once the worker reports
    them all taken, `extra` more streams arrive → (the four, the extra ones)."""
    async with httpx.AsyncClient(
        base_url=service.url, headers=service.headers, timeout=300
    ) as client:
        # Answers that run to max_tokens (as long as the 1024-token context allows): the
        # first two take seconds of engine work, while filling the places takes one probe.
        held = [asyncio.create_task(_stream(client, service.model, 1000)) for _ in range(4)]
        deadline = time.monotonic() + 120
        while not await asyncio.to_thread(_worker_full, service):
            assert time.monotonic() < deadline, "the four streams never filled the worker"
            assert not any(task.done() for task in held), [t.result() for t in held if t.done()]
            await asyncio.sleep(0.05)
        refused = await asyncio.gather(*(_stream(client, service.model, 2) for _ in range(extra)))
        return list(await asyncio.gather(*held)), list(refused)


def test_streams_beyond_the_queue_get_429_with_retry_after(
    service: Service, record_property: RecordProperty
) -> None:
    held, refused = asyncio.run(_beyond_the_queue(service, 6))
    statuses = [status for status, _, _ in held + refused]
    record_property("burst_statuses", str(sorted(statuses)))
    print(f"10 streams: {statuses.count(200)} x 200, {statuses.count(429)} x 429")
    for status, _, text in held:
        assert status == 200, text
        assert text.endswith("data: [DONE]") and '"error"' not in text
    for status, retry_after, text in refused:
        assert status == 429, text
        assert retry_after.isdigit() and int(retry_after) >= 1
    assert wait_until_idle(service.url) == 0
    assert_serves(service)


def _deep_schema(depth: int) -> dict[str, object]:
    schema: dict[str, object] = {"type": "integer"}
    for _ in range(depth):
        schema = {"type": "array", "items": schema}
    return schema


OVER_LIMIT = [
    ({"messages": [{"role": "user", "content": "hi"}] * 257}, "messages"),
    ({"messages": [{"role": "user", "content": [text_part("x")] * 65}]}, "messages.0.content"),
    ({"messages": [{"role": "user", "content": "x" * 262_145}]}, "messages.0.content"),
    ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ({"stop": "s" * 257}, "stop"),
    ({"user": "u" * 257}, "user"),
    ({"n": 4, "max_tokens": 9000}, "max_tokens"),
    (
        {"tools": [{"type": "function", "function": {"name": f"f{i}"}} for i in range(65)]},
        "tools",
    ),
    (
        {
            "tools": [
                {"type": "function", "function": {"name": "f", "parameters": _deep_schema(17)}}
            ]
        },
        "tools.0.function.parameters",
    ),
    (
        {
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "big", "schema": {"enum": ["v" * 100] * 400}},
            }
        },
        "response_format.json_schema.schema",
    ),
]


@pytest.mark.parametrize(("extra", "param"), OVER_LIMIT)
def test_over_limit_fields_are_400_naming_the_parameter(
    service: Service, extra: dict[str, object], param: str
) -> None:
    body = {**chat_body(service.model, max_tokens=2), **extra}
    response = _post(service, body)
    assert response.status_code == 400, response.text
    assert _error(response)["param"] == param


def test_uncompilable_schema_is_400_and_the_worker_still_serves(service: Service) -> None:
    """Valid JSON Schema the grammar compiler rejects: refused by the worker's pre-compile."""
    schema = {"type": "object", "properties": {"a": {"$ref": "#/$defs/missing"}}}
    form = {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}
    for _ in range(3):
        response = _post(service, chat_body(service.model, response_format=form, max_tokens=2))
        assert response.status_code == 400, response.text
        assert _error(response)["param"] == "response_format"
    assert_serves(service)
