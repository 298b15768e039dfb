"""Schemas of `POST /v1/embeddings`: OpenAI's, with media content parts as an
extension of `input` (the same parts chat messages take)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from service.api.chat_completion.protocol import ContentPart
from service.api.chat_completion.protocol import UsageInfo as UsageInfo
from service.api.protocol_base import OpenAIBaseModel


class EmbeddingRequest(OpenAIBaseModel):
    # One string, or a list of strings and/or content parts (one embedding each).
    input: str | list[str | ContentPart] = Field(union_mode="left_to_right")
    model: str | None = None
    dimensions: int | None = Field(None, ge=1)  # only the native size is served
    encoding_format: Literal["float", "base64"] = "float"
    user: str | None = None


class EmbeddingData(OpenAIBaseModel):
    object: Literal["embedding"] = "embedding"
    embedding: list[float] | str  # str: base64 of float32 little-endian
    index: int


class EmbeddingUsage(OpenAIBaseModel):
    prompt_tokens: int = 0
    total_tokens: int = 0


class EmbeddingResponse(OpenAIBaseModel):
    object: Literal["list"] = "list"
    data: list[EmbeddingData]
    model: str
    usage: EmbeddingUsage
