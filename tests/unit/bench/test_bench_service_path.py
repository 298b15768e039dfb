"""bench/service_path.py, the benchmark's one request layer, against a stand-in server.

A small aiohttp app speaks just enough of the service's API (model list, a
streamed and a whole chat completion, a streamed Responses turn) for the
client's parsing and token-count check to be exercised without an engine.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bench.load import run_level
from bench.service_path import ServiceClient, chat_text, output_text, responses_text


async def _events(request: web.Request, events: list[dict[str, Any]]) -> web.StreamResponse:
    reply = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await reply.prepare(request)
    for event in events:
        await reply.write(f"data: {json.dumps(event)}\n\n".encode())
    await reply.write(b"data: [DONE]\n\n")
    return reply


async def models(request: web.Request) -> web.Response:
    model = {"id": "demo", "object": "model", "created": 0, "owned_by": "bench"}
    return web.json_response({"object": "list", "data": [model]})


async def chat(request: web.Request) -> web.StreamResponse:
    body = await request.json()
    words = [f"w{i} " for i in range(body["max_tokens"])]
    if not body.get("stream"):
        usage = {"completion_tokens": len(words), "prompt_tokens": 1, "total_tokens": 0}
        message = {"role": "assistant", "content": "".join(words)}
        return web.json_response({"choices": [{"message": message}], "usage": usage})
    chunks: list[dict[str, Any]] = [{"choices": [{"delta": {"role": "assistant"}}]}]
    chunks += [{"choices": [{"delta": {"content": word}}]} for word in words]
    # A server that stops one token short: the client must notice.
    short = body["messages"][-1]["content"] == "short"
    chunks.append({"choices": [], "usage": {"completion_tokens": len(words) - short}})
    return await _events(request, chunks)


async def responses(request: web.Request) -> web.StreamResponse:
    events = [
        {"type": "response.created", "response": {"id": "r1"}},
        {"type": "response.output_text.delta", "delta": "Brown"},
        {"type": "response.output_text.delta", "delta": "."},
        {"type": "response.completed", "response": {"id": "r1"}},
    ]
    return await _events(request, events)


@pytest.fixture
async def client() -> AsyncIterator[ServiceClient]:
    app = web.Application()
    app.router.add_get("/v1/models", models)
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_post("/v1/responses", responses)
    async with TestServer(app) as server:
        service = ServiceClient(str(server.make_url("")).rstrip("/"), max_tokens=3)
        await service.start()
        yield service
        await service.aclose()


@pytest.mark.parametrize("light", [True, False], ids=["light", "openai"])
async def test_a_streamed_chat_is_timed_and_counted(client: ServiceClient, light: bool) -> None:
    client.light = light
    ttft, e2e, tokens, text = await client.chat([{"role": "user", "content": "hi"}])
    assert 0 < ttft <= e2e and tokens == 3 and text == "w0 w1 w2 "


async def test_a_reply_of_the_wrong_length_is_an_error(client: ServiceClient) -> None:
    with pytest.raises(RuntimeError, match="generated 2 tokens, wanted 3"):
        await client.chat([{"role": "user", "content": "short"}])


async def test_whole_completions_run_at_a_level(client: ServiceClient) -> None:
    bodies = [{"messages": [{"role": "user", "content": "x"}], "max_tokens": n} for n in (1, 2, 3)]
    replies, wall = await run_level(bodies, 2, client.complete)
    assert [reply["usage"]["completion_tokens"] for _, reply in replies] == [1, 2, 3]
    assert wall > 0 and all(e2e > 0 for e2e, _ in replies)


async def test_a_responses_stream_is_read_for_its_text(client: ServiceClient) -> None:
    reply = await client.stream("/v1/responses", {"input": "What colour?"}, responses_text)
    assert reply.text == "Brown." and 0 < reply.ttft_s <= reply.e2e_s


def test_the_event_parsers() -> None:
    assert chat_text({"choices": [{"delta": {"content": "a"}}]}) == "a"
    assert chat_text({"choices": [], "usage": {}}) is None
    assert responses_text({"type": "response.output_text.done", "text": "a"}) is None
    response = {"output": [{"type": "message", "content": [{"type": "output_text", "text": "A"}]}]}
    assert output_text(response) == "A"
