"""Schemas of `POST /v1/responses` and the stored response, field for field OpenAI's
Responses API, in the order of OpenAI's reference; PandaGPT extensions (the other
ImageBind modalities, shaped as their chat content parts) sit in marked blocks.

Fields OpenAI has and this service cannot serve (built-in tools, `reasoning`,
`conversation`, ...) are typed loosely here and refused by name in `items.check`,
so the 400 says which parameter, not which union branch failed.
"""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag

from service.api.chat_completion.protocol import ModalityPart
from service.api.chat_completion.size_limits import (
    MAX_CONTENT_PARTS,
    MAX_DESCRIPTION_CHARS,
    MAX_ID_CHARS,
    MAX_MESSAGES,
    MAX_NAME_CHARS,
    MAX_TEXT_CHARS,
    MAX_TOOLS,
)
from service.api.protocol_base import OpenAIBaseModel

MAX_METADATA_KEYS = 16  # as OpenAI: 16 pairs, keys up to 64 and values up to 512 characters
MAX_METADATA_KEY_CHARS = 64
MAX_METADATA_VALUE_CHARS = 512
MAX_OUTPUT_ITEMS_LISTED = 100  # `GET .../input_items?limit=`, as OpenAI

# --- content parts ---


class InputTextPart(OpenAIBaseModel):
    type: Literal["input_text"]
    text: str


class InputImagePart(OpenAIBaseModel):
    type: Literal["input_image"]
    image_url: str | None = None  # http(s) or a data: URL
    file_id: str | None = Field(None, max_length=MAX_ID_CHARS)  # no Files API here: a 400
    detail: Literal["auto", "low", "high", "original"] | None = "auto"  # one 224px view


class OutputTextPart(OpenAIBaseModel):
    """An earlier assistant message's text, sent back as input."""

    type: Literal["output_text"]
    text: str
    annotations: list[Any] = Field(default_factory=list, max_length=MAX_CONTENT_PARTS)


class RefusalPart(OpenAIBaseModel):
    type: Literal["refusal"]
    refusal: str


InputContent = Annotated[
    InputTextPart
    | InputImagePart
    | OutputTextPart
    | RefusalPart
    # --- extensions: audio and the other ImageBind modalities, as chat content parts ---
    | ModalityPart,
    Field(discriminator="type"),
]

# --- input items ---


class MessageItem(OpenAIBaseModel):
    type: Literal["message"] = "message"
    role: Literal["user", "assistant", "system", "developer"]
    content: str | Annotated[list[InputContent], Field(max_length=MAX_CONTENT_PARTS)]
    id: str | None = Field(None, max_length=MAX_ID_CHARS)
    status: Literal["in_progress", "completed", "incomplete"] | None = None


class FunctionCallItem(OpenAIBaseModel):
    type: Literal["function_call"]
    call_id: str = Field(max_length=MAX_ID_CHARS)
    name: str = Field(max_length=MAX_NAME_CHARS)
    arguments: str  # JSON text, as the model wrote it
    id: str | None = Field(None, max_length=MAX_ID_CHARS)
    status: Literal["in_progress", "completed", "incomplete"] | None = None


class FunctionCallOutputItem(OpenAIBaseModel):
    type: Literal["function_call_output"]
    call_id: str = Field(max_length=MAX_ID_CHARS)
    output: str | Annotated[list[InputTextPart], Field(max_length=MAX_CONTENT_PARTS)]
    id: str | None = Field(None, max_length=MAX_ID_CHARS)
    status: Literal["in_progress", "completed", "incomplete"] | None = None


def _item_type(value: Any) -> str:
    # OpenAI's "easy" message has no `type`: a message is the default.
    if isinstance(value, dict):
        return str(value.get("type") or "message")
    return str(getattr(value, "type", "message"))


InputItem = Annotated[
    Annotated[MessageItem, Tag("message")]
    | Annotated[FunctionCallItem, Tag("function_call")]
    | Annotated[FunctionCallOutputItem, Tag("function_call_output")],
    Discriminator(_item_type),
]

# --- text format, tools ---


class TextFormat(OpenAIBaseModel):
    type: Literal["text", "json_object", "json_schema"]
    name: str | None = Field(None, max_length=MAX_NAME_CHARS)  # json_schema only
    description: str | None = Field(None, max_length=MAX_DESCRIPTION_CHARS)
    # `schema` would shadow a BaseModel attribute; the wire name stays "schema".
    schema_: dict[str, Any] | None = Field(None, alias="schema")
    strict: bool | None = None


class TextConfig(OpenAIBaseModel):
    format: TextFormat | None = None
    verbosity: Literal["low", "medium", "high"] | None = None  # accepted, not acted on


class FunctionTool(OpenAIBaseModel):
    type: Literal["function"]
    name: str = Field(max_length=MAX_NAME_CHARS)
    description: str | None = Field(None, max_length=MAX_DESCRIPTION_CHARS)
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class OtherTool(OpenAIBaseModel):
    """A built-in tool (web_search, file_search, ...): refused by name in `items.check`."""

    type: str = Field(max_length=MAX_ID_CHARS)


class ToolChoiceFunction(OpenAIBaseModel):
    type: Literal["function"]
    name: str = Field(max_length=MAX_NAME_CHARS)


class ResponsesRequest(OpenAIBaseModel):
    background: bool | None = False
    conversation: str | dict[str, Any] | None = None  # no Conversations API here: a 400
    include: list[str] | None = Field(None, max_length=16)  # none served: a 400 if non-empty
    input: str | Annotated[list[InputItem], Field(min_length=1, max_length=MAX_MESSAGES)]
    instructions: str | None = Field(None, max_length=MAX_TEXT_CHARS)
    max_output_tokens: int | None = Field(None, ge=1)
    max_tool_calls: int | None = Field(None, ge=1)
    metadata: dict[str, Annotated[str, Field(max_length=MAX_METADATA_VALUE_CHARS)]] | None = Field(
        None, max_length=MAX_METADATA_KEYS
    )
    model: str | None = Field(None, max_length=MAX_ID_CHARS)  # the first served model if unset
    parallel_tool_calls: bool | None = True
    previous_response_id: str | None = Field(None, max_length=MAX_ID_CHARS)
    prompt: dict[str, Any] | None = None  # no stored prompts here: a 400
    reasoning: dict[str, Any] | None = None  # not a reasoning model: a 400 unless empty
    store: bool | None = True
    stream: bool | None = False
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    text: TextConfig | None = None
    tool_choice: Literal["none", "auto", "required"] | ToolChoiceFunction | None = None
    tools: list[FunctionTool | OtherTool] | None = Field(None, max_length=MAX_TOOLS)
    top_logprobs: int | None = Field(None, ge=0, le=20)  # not served: a 400 above 0
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    truncation: Literal["auto", "disabled"] | None = "disabled"  # "auto": a 400
    user: str | None = Field(None, max_length=MAX_ID_CHARS)

    # --- extensions (vLLM names) ---
    top_k: int | None = Field(None, ge=-1, description="-1 or 0 disables top-k.")
    ignore_eos: bool = False
    priority: int | None = Field(
        None,
        description="Lower is served first (vLLM's field); default and floor: the API key's"
        " priority, else 0.",
    )


# --- the response ---


def response_id() -> str:
    return f"resp_{uuid.uuid4().hex}"


def item_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def now() -> int:
    return int(time.time())


class OutputText(OpenAIBaseModel):
    type: Literal["output_text"] = "output_text"
    text: str
    annotations: list[Any] = Field(default_factory=list)
    logprobs: list[Any] = Field(default_factory=list)


class OutputMessage(OpenAIBaseModel):
    id: str
    type: Literal["message"] = "message"
    role: Literal["assistant"] = "assistant"
    status: Literal["in_progress", "completed", "incomplete"] = "completed"
    content: list[OutputText] = Field(default_factory=list)


class FunctionCallOutput(OpenAIBaseModel):
    """A call the model made (an output item; OpenAI's `function_call`)."""

    id: str
    type: Literal["function_call"] = "function_call"
    status: Literal["in_progress", "completed", "incomplete"] = "completed"
    call_id: str
    name: str
    arguments: str


OutputItem = Annotated[OutputMessage | FunctionCallOutput, Field(discriminator="type")]


class InputTokensDetails(OpenAIBaseModel):
    cached_tokens: int = 0


class OutputTokensDetails(OpenAIBaseModel):
    reasoning_tokens: int = 0


class ResponseUsage(OpenAIBaseModel):
    input_tokens: int = 0
    input_tokens_details: InputTokensDetails = Field(default_factory=InputTokensDetails)
    output_tokens: int = 0
    output_tokens_details: OutputTokensDetails = Field(default_factory=OutputTokensDetails)
    total_tokens: int = 0


class ResponseError(OpenAIBaseModel):
    code: str
    message: str


class IncompleteDetails(OpenAIBaseModel):
    reason: Literal["max_output_tokens", "content_filter"]


Status = Literal["completed", "failed", "in_progress", "cancelled", "queued", "incomplete"]


class ResponseObject(OpenAIBaseModel):
    id: str
    object: Literal["response"] = "response"
    created_at: int
    status: Status
    background: bool = False
    completed_at: int | None = None
    error: ResponseError | None = None
    incomplete_details: IncompleteDetails | None = None
    instructions: str | None = None
    max_output_tokens: int | None = None
    max_tool_calls: int | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    model: str
    output: list[OutputItem] = Field(default_factory=list)
    parallel_tool_calls: bool = True
    previous_response_id: str | None = None
    reasoning: dict[str, Any] | None = None
    store: bool = True
    temperature: float | None = None
    text: dict[str, Any] = Field(default_factory=lambda: {"format": {"type": "text"}})
    tool_choice: str | dict[str, Any] = "auto"
    tools: list[dict[str, Any]] = Field(default_factory=list)
    top_p: float | None = None
    truncation: Literal["auto", "disabled"] = "disabled"
    usage: ResponseUsage | None = None
    user: str | None = None


class DeletedResponse(OpenAIBaseModel):
    id: str
    object: Literal["response"] = "response"
    deleted: bool = True


class InputItemList(OpenAIBaseModel):
    object: Literal["list"] = "list"
    data: list[dict[str, Any]]
    first_id: str | None = None
    last_id: str | None = None
    has_more: bool = False
