"""The per-token chunk written by hand is byte for byte the pydantic chunk."""

from __future__ import annotations

import json

import pytest

from service.api.chat_completion.protocol import ChatCompletionChunk, DeltaMessage
from service.api.chat_completion.serving import TextChunk
from service.api.chat_completion.tool_replies import stream_choice
from service.http.streaming import sse


def pydantic_chunk(cid: str, created: int, model: str, index: int, text: str) -> str:
    body = ChatCompletionChunk(
        id=cid,
        created=created,
        model=model,
        choices=[stream_choice(index, DeltaMessage(content=text))],
    ).model_dump(mode="json", exclude_none=True)
    for item in body["choices"]:
        item.setdefault("finish_reason", None)
        item.setdefault("logprobs", None)
    return sse(json.dumps(body, separators=(",", ":")))


@pytest.mark.parametrize(
    "text",
    ["hello", " world", "", 'quote " and \\ backslash', "line\nbreak\t", "π ≈ 3.14 🐼", "\x00"],
)
@pytest.mark.parametrize("model", ["pandagpt-7b", 'odd "name" é'])
def test_text_chunk_is_the_pydantic_chunk(text: str, model: str) -> None:
    for index in (0, 7):
        expected = pydantic_chunk("chatcmpl-abc", 1765000000, model, index, text)
        assert TextChunk("chatcmpl-abc", 1765000000, model)(index, text) == expected
