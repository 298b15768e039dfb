"""Schemas of `GET /v1/models` (OpenAI's model list, vLLM's extra fields)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from service.api.protocol_base import OpenAIBaseModel


class ModelCard(OpenAIBaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "pandagpt-serve"
    # --- extensions (as vLLM reports them) ---
    root: str | None = None
    parent: str | None = None
    max_model_len: int | None = None


class ModelList(OpenAIBaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard] = Field(default_factory=list)
