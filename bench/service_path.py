"""The service path: chat requests to `pandagpt serve` with the official `openai` client.

Every request streams (so TTFT is the arrival of the first chunk carrying
text), greedy (temperature 0), with `ignore_eos` (a vLLM-named extension the
API accepts) and `max_tokens`, so each reply is exactly that many tokens; the
count is checked against `usage.completion_tokens`.
"""

from __future__ import annotations

import time
from typing import Any

from openai import AsyncOpenAI

from bench.load import RequestResult
from bench.workload import BenchRequest


class ServiceClient:
    def __init__(self, base_url: str, max_tokens: int, timeout_s: float = 600.0) -> None:
        self.max_tokens = max_tokens
        # The client's default pool (100 keep-alive connections) covers C ≤ 32;
        # no retries: a failure is a failure.
        self._client = AsyncOpenAI(
            base_url=f"{base_url}/v1", api_key="unused", max_retries=0, timeout=timeout_s
        )
        self.model = ""

    async def start(self) -> None:
        self.model = (await self._client.models.list()).data[0].id

    async def aclose(self) -> None:
        await self._client.close()

    async def chat(
        self, messages: list[dict[str, Any]], max_tokens: int | None = None
    ) -> tuple[float, float, int, str]:
        """(ttft_s, e2e_s, completion tokens, text) of one streamed, fixed-length reply."""
        wanted = max_tokens or self.max_tokens
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

    async def one(self, request: BenchRequest) -> RequestResult:
        ttft, e2e, tokens, text = await self.chat(request.messages())
        return RequestResult(request.index, request.kind, ttft, e2e, tokens, text)
