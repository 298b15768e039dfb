"""The request layer: every benchmark's HTTP requests to `pandagpt serve`, and their timing.

Chat requests of the load levels stream (so TTFT is the arrival of the first
chunk carrying text), greedy (temperature 0), with `ignore_eos` (a vLLM-named
extension the API accepts) and `max_tokens`, so each reply is exactly that many
tokens; the count is checked against `usage.completion_tokens`. `complete`
(one non-streamed chat) and `respond` / `stream` on `/v1/responses` serve the
structured-output and Responses benchmarks with the same connection pool.

Two clients send the load levels' chats: the official `openai` client, and a
light one (aiohttp, server-sent events read line by line, each chunk parsed
with the standard `json`), the default. The load generator runs on the same
cores as the service, so what it spends the engine loses: per streamed token
the `openai` client (httpx underneath, typed chunk objects) costs several times
the CPU of the light one, and httpx alone about twice that of aiohttp, whose
response parser is in C (`pandagpt bench` reports the share per level).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from openai import AsyncOpenAI

from bench.load import RequestResult
from bench.workload import BenchRequest


@dataclass(frozen=True)
class Streamed:
    """One streamed reply: seconds from the send to the first text and to the end."""

    ttft_s: float
    e2e_s: float
    text: str
    completion_tokens: int  # from the usage the stream reported (0: none reported)


def chat_text(chunk: dict[str, Any]) -> str | None:
    choices = chunk.get("choices")
    return choices[0].get("delta", {}).get("content") if choices else None


def responses_text(event: dict[str, Any]) -> str | None:
    return event.get("delta") if event.get("type") == "response.output_text.delta" else None


def output_text(response: dict[str, Any]) -> str:
    """A Responses API object's text (what the SDK's `output_text` joins)."""
    return "".join(
        part.get("text", "")
        for item in response.get("output", [])
        for part in item.get("content", [])
        if part.get("type") == "output_text"
    )


class ServiceClient:
    def __init__(
        self, base_url: str, max_tokens: int, timeout_s: float = 600.0, light: bool = True
    ) -> None:
        self.max_tokens = max_tokens
        self.light = light
        self._base_url = base_url
        self._timeout_s = timeout_s
        self._http: aiohttp.ClientSession | None = None  # made on the running loop
        # The client's default pool (100 keep-alive connections) covers C ≤ 32;
        # no retries: a failure is a failure.
        self._client = AsyncOpenAI(
            base_url=f"{base_url}/v1", api_key="unused", max_retries=0, timeout=timeout_s
        )
        self.model = ""

    async def start(self) -> None:
        self._http = aiohttp.ClientSession(
            self._base_url,
            connector=aiohttp.TCPConnector(limit=256),
            timeout=aiohttp.ClientTimeout(total=self._timeout_s),
        )
        self.model = (await self._client.models.list()).data[0].id

    async def aclose(self) -> None:
        await self._client.close()
        if self._http is not None:
            await self._http.close()

    @property
    def http(self) -> aiohttp.ClientSession:
        if self._http is None:
            raise RuntimeError("ServiceClient.start() was not awaited")
        return self._http

    async def chat(
        self, messages: list[dict[str, Any]], max_tokens: int | None = None
    ) -> tuple[float, float, int, str]:
        """(ttft_s, e2e_s, completion tokens, text) of one streamed, fixed-length reply."""
        wanted = max_tokens or self.max_tokens
        if self.light:
            body = {
                "model": self.model,
                "messages": messages,
                "max_tokens": wanted,
                "temperature": 0.0,
                "stream": True,
                "stream_options": {"include_usage": True},
                "ignore_eos": True,
            }
            reply = await self.stream("/v1/chat/completions", body, chat_text)
        else:
            reply = await self._chat_openai(messages, wanted)
        if reply.completion_tokens != wanted:
            raise RuntimeError(
                f"service generated {reply.completion_tokens} tokens, wanted {wanted}"
            )
        return reply.ttft_s, reply.e2e_s, reply.completion_tokens, reply.text

    async def _chat_openai(self, messages: list[dict[str, Any]], wanted: int) -> Streamed:
        start = time.perf_counter()
        ttft: float | None = None
        text: list[str] = []
        tokens = 0
        stream = await self._client.chat.completions.create(  # type: ignore[call-overload]
            model=self.model,
            messages=messages,
            max_tokens=wanted,
            temperature=0.0,
            stream=True,
            stream_options={"include_usage": True},
            extra_body={"ignore_eos": True},
        )
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                if ttft is None:
                    ttft = time.perf_counter() - start
                text.append(chunk.choices[0].delta.content)
            if chunk.usage is not None:
                tokens = chunk.usage.completion_tokens
        e2e = time.perf_counter() - start
        return Streamed(ttft if ttft is not None else e2e, e2e, "".join(text), tokens)

    async def stream(
        self, path: str, body: dict[str, Any], text_of: Callable[[dict[str, Any]], str | None]
    ) -> Streamed:
        """POST `body` and read its server-sent events to the end; `text_of` picks the text
        out of one event (chat chunk or Responses event). The clock starts before the send:
        the reply's headers wait for the first token."""
        start = time.perf_counter()
        ttft: float | None = None
        text: list[str] = []
        tokens = 0
        async with self.http.post(path, json=body) as response:
            response.raise_for_status()
            async for line in response.content:  # one server-sent-event line each
                if not line.startswith(b"data: ") or line.startswith(b"data: [DONE]"):
                    continue
                event = json.loads(line[6:])
                if "error" in event and event.get("type", "error") == "error":
                    raise RuntimeError(f"service error: {event['error']}")
                if content := text_of(event):
                    if ttft is None:
                        ttft = time.perf_counter() - start
                    text.append(content)
                if usage := event.get("usage"):
                    tokens = usage["completion_tokens"]
        e2e = time.perf_counter() - start
        return Streamed(ttft if ttft is not None else e2e, e2e, "".join(text), tokens)

    async def complete(self, body: dict[str, Any]) -> tuple[float, dict[str, Any]]:
        """One chat completion, not streamed: (seconds send → whole reply, the reply)."""
        return await self.post("/v1/chat/completions", {"model": self.model, **body})

    async def respond(self, body: dict[str, Any]) -> tuple[float, dict[str, Any]]:
        """One `/v1/responses` call, not streamed: (seconds, the Response object)."""
        return await self.post("/v1/responses", {"model": self.model, **body})

    async def post(self, path: str, body: dict[str, Any]) -> tuple[float, dict[str, Any]]:
        start = time.perf_counter()
        async with self.http.post(path, json=body) as response:
            response.raise_for_status()
            reply: dict[str, Any] = await response.json()
        return time.perf_counter() - start, reply

    async def one(self, request: BenchRequest) -> RequestResult:
        ttft, e2e, tokens, text = await self.chat(request.messages())
        return RequestResult(request.index, request.kind, ttft, e2e, tokens, text)
