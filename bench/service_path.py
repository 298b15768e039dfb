"""The service path: chat requests to `pandagpt serve`, over HTTP, streaming.

Every request streams (so TTFT is the arrival of the first chunk carrying
text), greedy (temperature 0), with `ignore_eos` (a vLLM-named extension the
API accepts) and `max_tokens`, so each reply is exactly that many tokens; the
count is checked against `usage.completion_tokens`.

Two clients send the same requests: the official `openai` client, and a light
one (aiohttp, server-sent events read line by line, each chunk parsed with the
standard `json`), the default. The load generator runs on the same cores as
the service, so what it spends the engine loses: per streamed token the
`openai` client (httpx underneath, typed chunk objects) costs several times the
CPU of the light one, and httpx alone about twice that of aiohttp, whose
response parser is in C (`pandagpt bench` reports the share per level).
"""

from __future__ import annotations

import json
import time
from typing import Any

import aiohttp
from openai import AsyncOpenAI

from bench.load import RequestResult
from bench.workload import BenchRequest


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

    async def chat(
        self, messages: list[dict[str, Any]], max_tokens: int | None = None
    ) -> tuple[float, float, int, str]:
        """(ttft_s, e2e_s, completion tokens, text) of one streamed, fixed-length reply."""
        wanted = max_tokens or self.max_tokens
        if self.light:
            return await self._chat_light(messages, wanted)
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
        if tokens != wanted:
            raise RuntimeError(f"service generated {tokens} tokens, wanted {wanted}")
        return (ttft if ttft is not None else e2e), e2e, tokens, "".join(text)

    async def _chat_light(
        self, messages: list[dict[str, Any]], wanted: int
    ) -> tuple[float, float, int, str]:
        body = {
            "model": self.model,
            "messages": messages,
            "max_tokens": wanted,
            "temperature": 0.0,
            "stream": True,
            "stream_options": {"include_usage": True},
            "ignore_eos": True,
        }
        start = time.perf_counter()
        ttft: float | None = None
        text: list[str] = []
        tokens = 0
        if self._http is None:
            raise RuntimeError("ServiceClient.start() was not awaited")
        async with self._http.post("/v1/chat/completions", json=body) as response:
            response.raise_for_status()
            async for line in response.content:  # one server-sent-event line each
                if not line.startswith(b"data: ") or line.startswith(b"data: [DONE]"):
                    continue
                chunk = json.loads(line[6:])
                if "error" in chunk:
                    raise RuntimeError(f"service error: {chunk['error']}")
                choices = chunk.get("choices")
                if choices and (content := choices[0].get("delta", {}).get("content")):
                    if ttft is None:
                        ttft = time.perf_counter() - start
                    text.append(content)
                if chunk.get("usage"):
                    tokens = chunk["usage"]["completion_tokens"]
        e2e = time.perf_counter() - start
        if tokens != wanted:
            raise RuntimeError(f"service generated {tokens} tokens, wanted {wanted}")
        return (ttft if ttft is not None else e2e), e2e, tokens, "".join(text)

    async def one(self, request: BenchRequest) -> RequestResult:
        ttft, e2e, tokens, text = await self.chat(request.messages())
        return RequestResult(request.index, request.kind, ttft, e2e, tokens, text)
