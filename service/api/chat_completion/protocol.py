"""Schemas of `POST /v1/chat/completions`, field for field OpenAI's, in the
order of OpenAI's reference; PandaGPT/vLLM extensions sit in marked blocks."""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from service.api.chat_completion.size_limits import (
    MAX_CONTENT_PARTS,
    MAX_ID_CHARS,
    MAX_MESSAGES,
    MAX_STOP,
    MAX_STOP_CHARS,
    MAX_TOOL_CALLS,
    MAX_TOOLS,
)
from service.api.protocol_base import OpenAIBaseModel
from service.contract import OutputConstraint, SamplingSettings
from service.errors import InvalidRequest

# --- content parts ---


class MediaURL(OpenAIBaseModel):
    url: str
    detail: Literal["auto", "low", "high"] | None = None  # accepted, ignored: one 224px view


class InputAudio(OpenAIBaseModel):
    data: str  # base64
    format: str  # "wav", "mp3", ...


class TextPart(OpenAIBaseModel):
    type: Literal["text"]
    text: str


class ImageURLPart(OpenAIBaseModel):
    type: Literal["image_url"]
    image_url: MediaURL


class InputAudioPart(OpenAIBaseModel):
    type: Literal["input_audio"]
    input_audio: InputAudio


# --- extensions: the other ImageBind modalities, shaped like image_url ---


class AudioURLPart(OpenAIBaseModel):
    type: Literal["audio_url"]
    audio_url: MediaURL


class VideoURLPart(OpenAIBaseModel):
    type: Literal["video_url"]
    video_url: MediaURL


class ThermalURLPart(OpenAIBaseModel):
    type: Literal["thermal_url"]
    thermal_url: MediaURL


class DepthURLPart(OpenAIBaseModel):
    type: Literal["depth_url"]
    depth_url: MediaURL


class IMUURLPart(OpenAIBaseModel):
    type: Literal["imu_url"]
    imu_url: MediaURL


# Audio and the other ImageBind modalities: chat content parts, and response input parts too.
ModalityPart = (
    InputAudioPart | AudioURLPart | VideoURLPart | ThermalURLPart | DepthURLPart | IMUURLPart
)
ContentPart = Annotated[TextPart | ImageURLPart | ModalityPart, Field(discriminator="type")]


class StoredMediaPart(OpenAIBaseModel):
    """Not a wire type (never in `ContentPart`): media of an earlier turn of a stored
    conversation (`/v1/responses` `previous_response_id`), by its sha256 only. The
    worker takes its feature from the embedding cache; the bytes are not kept."""

    type: Literal["stored_media"] = "stored_media"
    modality: str
    sha256: str


# part type -> the modality the worker encodes it as
PART_MODALITY: dict[str, str] = {
    "image_url": "image",
    "input_audio": "audio",
    "audio_url": "audio",
    "video_url": "video",
    "thermal_url": "thermal",
    "depth_url": "depth",
    "imu_url": "imu",
}

# --- messages ---


class SystemMessage(OpenAIBaseModel):
    role: Literal["system"]
    content: str | list[TextPart]
    name: str | None = None


class DeveloperMessage(OpenAIBaseModel):
    role: Literal["developer"]
    content: str | list[TextPart]
    name: str | None = None


class UserMessage(OpenAIBaseModel):
    role: Literal["user"]
    content: str | Annotated[list[ContentPart], Field(max_length=MAX_CONTENT_PARTS)]
    name: str | None = Field(None, max_length=MAX_ID_CHARS)


class FunctionCall(OpenAIBaseModel):
    name: str
    arguments: str  # JSON text, as the model wrote it


class ToolCall(OpenAIBaseModel):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class AssistantMessage(OpenAIBaseModel):
    role: Literal["assistant"]
    content: str | list[TextPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = Field(None, max_length=MAX_TOOL_CALLS)


class ToolMessage(OpenAIBaseModel):
    role: Literal["tool"]
    content: str | list[TextPart]
    tool_call_id: str = Field(max_length=MAX_ID_CHARS)


Message = Annotated[
    SystemMessage | DeveloperMessage | UserMessage | AssistantMessage | ToolMessage,
    Field(discriminator="role"),
]

# --- response_format and tools ---


class JSONSchemaFormat(OpenAIBaseModel):
    name: str
    description: str | None = None
    # `schema` would shadow a BaseModel attribute; the wire name stays "schema".
    schema_: dict[str, Any] | None = Field(None, alias="schema")
    strict: bool | None = None


class ResponseFormat(OpenAIBaseModel):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JSONSchemaFormat | None = None


class FunctionDefinition(OpenAIBaseModel):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class ChatCompletionTool(OpenAIBaseModel):
    type: Literal["function"]
    function: FunctionDefinition


class NamedFunction(OpenAIBaseModel):
    name: str


class NamedToolChoice(OpenAIBaseModel):
    type: Literal["function"]
    function: NamedFunction


class StructuredOutputs(OpenAIBaseModel):
    """vLLM's extension: a regex or a fixed set of answers."""

    regex: str | None = None
    choice: list[str] | None = None


class StreamOptions(OpenAIBaseModel):
    include_usage: bool | None = False


class ChatCompletionRequest(OpenAIBaseModel):
    messages: list[Message] = Field(min_length=1, max_length=MAX_MESSAGES)
    model: str | None = None  # optional here: the first served model when omitted
    frequency_penalty: float | None = Field(0.0, ge=-2.0, le=2.0)
    logprobs: bool | None = False
    max_completion_tokens: int | None = Field(None, ge=1)
    max_tokens: int | None = Field(None, ge=1, description="Deprecated alias.")
    n: int = Field(1, ge=1, description="Choices; at most the server's max_n (16).")
    presence_penalty: float | None = Field(0.0, ge=-2.0, le=2.0)
    parallel_tool_calls: bool | None = None  # default true, as OpenAI's
    response_format: ResponseFormat | None = None
    seed: int | None = None
    # (a single string's length is checked in validation.py: a constrained str in this
    # union would name the parameter "stop.constrained-str")
    stop: (
        str
        | Annotated[
            list[Annotated[str, Field(max_length=MAX_STOP_CHARS)]], Field(max_length=MAX_STOP)
        ]
        | None
    ) = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_logprobs: int | None = Field(None, ge=0, le=20)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    tools: list[ChatCompletionTool] | None = Field(None, max_length=MAX_TOOLS)
    user: str | None = Field(None, max_length=MAX_ID_CHARS)

    # --- extensions (vLLM names) ---
    top_k: int | None = Field(None, ge=-1, description="-1 or 0 disables top-k.")
    ignore_eos: bool = False
    structured_outputs: StructuredOutputs | None = None
    priority: int | None = Field(
        None,
        description="Lower is served first (vLLM's field); default and floor: the API key's"
        " priority, else 0.",
    )

    @model_validator(mode="after")
    def _check_option_pairs(self) -> ChatCompletionRequest:
        # Options that only mean something beside another one. InvalidRequest is no
        # ValueError, so pydantic lets it through: the 400 names the option itself.
        if self.stream_options is not None and not self.stream:
            raise InvalidRequest(
                "stream_options is only allowed with stream=true.", param="stream_options"
            )
        if self.top_logprobs is not None and not self.logprobs:
            raise InvalidRequest("top_logprobs needs logprobs=true.", param="top_logprobs")
        return self

    def prompt_size(self) -> tuple[int, int]:
        """(characters of text, media parts) across all messages: the token estimate's input."""
        chars = media = 0
        for message in self.messages:
            content = message.content
            if isinstance(content, str):
                chars += len(content)
                continue
            for part in content or []:
                if isinstance(part, TextPart):
                    chars += len(part.text)
                else:
                    media += 1
        return chars, media

    def to_sampling(
        self,
        defaults: SamplingSettings | None = None,
        constraint: OutputConstraint | None = None,
    ) -> SamplingSettings:
        """Request value, else the server default; None left for the worker to
        fill with the reference default (top_p 0.01, temperature 1.0, 256 tokens)."""
        base = defaults or SamplingSettings()
        stop = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        max_tokens = self.max_completion_tokens or self.max_tokens
        return SamplingSettings(
            max_tokens=max_tokens if max_tokens is not None else base.max_tokens,
            temperature=self.temperature if self.temperature is not None else base.temperature,
            top_p=self.top_p if self.top_p is not None else base.top_p,
            top_k=self.top_k if self.top_k is not None else base.top_k,
            n=self.n,
            seed=self.seed if self.seed is not None else base.seed,
            stop=stop or list(base.stop),
            presence_penalty=self.presence_penalty or 0.0,
            frequency_penalty=self.frequency_penalty or 0.0,
            ignore_eos=self.ignore_eos,
            logprobs=(self.top_logprobs or 0) if self.logprobs else None,
            constraint=constraint,
        )


# --- responses ---


def completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


def now() -> int:
    return int(time.time())


class UsageInfo(OpenAIBaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class ChatCompletionTopLogprob(OpenAIBaseModel):
    token: str
    logprob: float
    bytes: list[int] | None = None


class ChatCompletionTokenLogprob(ChatCompletionTopLogprob):
    top_logprobs: list[ChatCompletionTopLogprob] = Field(default_factory=list)


class ChoiceLogprobs(OpenAIBaseModel):
    content: list[ChatCompletionTokenLogprob] | None = None


class ChatMessage(OpenAIBaseModel):
    role: Literal["assistant"] = "assistant"
    content: str | None = None
    tool_calls: list[ToolCall] | None = None


class ChatCompletionChoice(OpenAIBaseModel):
    index: int
    message: ChatMessage
    finish_reason: str | None = None
    logprobs: ChoiceLogprobs | None = None


class ChatCompletionResponse(OpenAIBaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatCompletionChoice]
    usage: UsageInfo
    system_fingerprint: str | None = None


class DeltaFunctionCall(OpenAIBaseModel):
    name: str | None = None
    arguments: str | None = None


class DeltaToolCall(OpenAIBaseModel):
    index: int
    id: str | None = None
    type: Literal["function"] | None = None
    function: DeltaFunctionCall | None = None


class DeltaMessage(OpenAIBaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None
    tool_calls: list[DeltaToolCall] | None = None


class ChatCompletionStreamChoice(OpenAIBaseModel):
    index: int
    delta: DeltaMessage
    finish_reason: str | None = None
    logprobs: ChoiceLogprobs | None = None


class ChatCompletionChunk(OpenAIBaseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChatCompletionStreamChoice]
    usage: UsageInfo | None = None
