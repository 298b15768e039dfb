"""A Responses request → a chat completion request, so the chat path serves it
(limits, structured outputs and tools, media fetching, admission, the worker).

The conversation is a list of items: `instructions` (a system message, not carried
to the next response, as OpenAI), the stored conversation of `previous_response_id`,
then the new `input`. Messages map to chat messages role for role; a
`function_call` item is a tool call of an assistant message (consecutive calls
join one message), a `function_call_output` item a `tool` message.

Items are stored as JSON in Responses shapes, each with an `id`; a stored media
part keeps its modality and sha256 instead of its bytes (and its URL, if not a
`data:` URL), and comes back as a `StoredMediaPart`: the worker reads its feature
from the embedding cache. Only stored items are read as references: a client
cannot name a cached feature by hash.

Chat errors name chat parameters (`messages.3.content.1.image_url.url`);
`rename_param` maps them back to this request's (`input.2.content.1.image_url`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from pydantic import TypeAdapter, ValidationError

from service.api.chat_completion.protocol import (
    PART_MODALITY,
    AssistantMessage,
    ChatCompletionRequest,
    ChatCompletionTool,
    ContentPart,
    DeveloperMessage,
    FunctionCall,
    FunctionDefinition,
    ImageURLPart,
    JSONSchemaFormat,
    MediaURL,
    Message,
    NamedFunction,
    NamedToolChoice,
    ResponseFormat,
    StoredMediaPart,
    SystemMessage,
    TextPart,
    ToolCall,
    ToolMessage,
    UserMessage,
)
from service.api.responses.protocol import (
    MAX_METADATA_KEY_CHARS,
    FunctionTool,
    ResponsesRequest,
    ToolChoiceFunction,
    item_id,
)
from service.contract import ChatJob
from service.errors import InvalidRequest
from service.http.errors import param_from_loc

_CHAT_PART: TypeAdapter[Any] = TypeAdapter(ContentPart)
_TEXT_TYPES = ("input_text", "output_text")
_ID_PREFIX = {"message": "msg", "function_call": "fc", "function_call_output": "fco"}


def check(request: ResponsesRequest) -> None:
    """A 400 naming each parameter this service does not serve (before any work)."""
    unsupported = {
        "conversation": request.conversation is not None,
        "prompt": request.prompt is not None,
        "reasoning": any(v is not None for v in (request.reasoning or {}).values()),
        "include": bool(request.include),
        "truncation": request.truncation == "auto",
        "top_logprobs": bool(request.top_logprobs),
    }
    for param, asked in unsupported.items():
        if asked:
            raise InvalidRequest(f"{param} is not supported by this server.", param=param)
    for i, tool in enumerate(request.tools or []):
        if not isinstance(tool, FunctionTool):
            what = "a name" if tool.type == "function" else f"not {tool.type[:40]!r}"
            raise InvalidRequest(
                f"Only function tools are supported here; tools.{i} needs {what}.",
                param=f"tools.{i}.type" if tool.type != "function" else f"tools.{i}.name",
            )
    if request.background and request.stream:
        raise InvalidRequest("background with stream is not supported.", param="background")
    if request.background and request.store is False:
        raise InvalidRequest("background needs store=true.", param="store")
    for key in request.metadata or {}:
        if len(key) > MAX_METADATA_KEY_CHARS:
            raise InvalidRequest(
                f"metadata keys are at most {MAX_METADATA_KEY_CHARS} characters.",
                param="metadata",
                code="limit_exceeded",
            )
    form = request.text.format if request.text else None
    if form is not None and form.type == "json_schema":
        for name, value in (("name", form.name), ("schema", form.schema_)):
            if value is None:
                raise InvalidRequest(
                    f"text.format.{name} is required.", param=f"text.format.{name}"
                )


def input_items(request: ResponsesRequest) -> list[dict[str, Any]]:
    """The new input as item dicts, each with an id."""
    if isinstance(request.input, str):
        items: list[dict[str, Any]] = [
            {"type": "message", "role": "user", "content": request.input}
        ]
    else:
        items = [
            item.model_dump(mode="json", by_alias=True, exclude_none=True) for item in request.input
        ]
    for item in items:
        item.setdefault("type", "message")
        item["id"] = item.get("id") or item_id(_ID_PREFIX[item["type"]])
    return items


@dataclass
class Translation:
    chat: ChatCompletionRequest
    new_items: list[dict[str, Any]]  # this request's input items (media still inline)
    origins: list[str] = field(default_factory=list)  # chat message index → our parameter

    def stored_items(self, job: ChatJob) -> list[dict[str, Any]]:
        """The new items as stored: each media part by (modality, sha256), from the job."""
        new_media = sum(1 for item in self.new_items for _ in _media_parts(item))
        hashes = iter(job.media()[len(job.media()) - new_media :])
        stored = []
        for item in self.new_items:
            copy = dict(item)
            if isinstance(item.get("content"), list):
                copy["content"] = [
                    _stored_part(part, next(hashes)) if _is_media(part) else part
                    for part in item["content"]
                ]
            stored.append(copy)
        return stored


def translate(request: ResponsesRequest, prior: list[dict[str, Any]]) -> Translation:
    new = input_items(request)
    messages: list[Message] = []
    origins: list[str] = []
    if request.instructions:
        messages.append(SystemMessage(role="system", content=request.instructions))
        origins.append("instructions")
    sources = [(item, "previous_response_id", True) for item in prior]
    sources += [(item, f"input.{i}", False) for i, item in enumerate(new)]
    for item, origin, stored in sources:
        kind = item.get("type", "message")
        if kind == "function_call":
            call = ToolCall(
                id=item["call_id"],
                function=FunctionCall(name=item["name"], arguments=item["arguments"]),
            )
            last = messages[-1] if messages else None
            if isinstance(last, AssistantMessage) and origins[-1] != "instructions":
                last.tool_calls = [*(last.tool_calls or []), call]
                continue
            messages.append(AssistantMessage(role="assistant", content=None, tool_calls=[call]))
        elif kind == "function_call_output":
            output = item["output"]
            text = output if isinstance(output, str) else "\n".join(p["text"] for p in output)
            messages.append(ToolMessage(role="tool", content=text, tool_call_id=item["call_id"]))
        else:
            messages.append(_message(item, stored, origin))
        origins.append(origin)
    return Translation(_chat_request(request, messages, origins), new, origins)


def _message(item: dict[str, Any], stored: bool, origin: str) -> Message:
    role, content = item["role"], item["content"]
    if role != "user":
        text = content if isinstance(content, str) else "\n".join(_texts(content))
        if role == "assistant":
            return AssistantMessage(role="assistant", content=text)
        if role == "system":
            return SystemMessage(role="system", content=text)
        return DeveloperMessage(role="developer", content=text)
    if isinstance(content, str):
        return UserMessage(role="user", content=content)
    parts = [_chat_part(part, stored, f"{origin}.content.{j}") for j, part in enumerate(content)]
    if any(isinstance(part, StoredMediaPart) for part in parts):
        # Not a wire type, so not in the message's schema: built without validation.
        return UserMessage.model_construct(role="user", content=parts, name=None)
    return UserMessage(role="user", content=parts)


def _texts(content: list[dict[str, Any]]) -> list[str]:
    return [str(part.get("text", part.get("refusal", ""))) for part in content]


def _chat_part(part: dict[str, Any], stored: bool, param: str) -> Any:
    kind = part["type"]
    if kind in _TEXT_TYPES or kind == "refusal":
        return TextPart(type="text", text=_texts([part])[0])
    if stored and "sha256" in part:
        return StoredMediaPart(modality=part["modality"], sha256=part["sha256"])
    if kind == "input_image":
        if part.get("file_id") is not None:
            raise InvalidRequest(
                "file_id is not supported here (no Files API); send image_url.",
                param=f"{param}.file_id",
            )
        if not part.get("image_url"):
            raise InvalidRequest("input_image needs image_url.", param=f"{param}.image_url")
        detail = part.get("detail")
        return ImageURLPart(
            type="image_url",
            image_url=MediaURL(
                url=part["image_url"], detail=detail if detail != "original" else None
            ),
        )
    return _CHAT_PART.validate_python(part)  # the extensions: chat's own part shapes


def _is_media(part: dict[str, Any]) -> bool:
    return part["type"] == "input_image" or part["type"] in PART_MODALITY


def _media_parts(item: dict[str, Any]) -> list[dict[str, Any]]:
    content = item.get("content")
    return [p for p in content if _is_media(p)] if isinstance(content, list) else []


def _stored_part(part: dict[str, Any], media: Any) -> dict[str, Any]:
    kept: dict[str, Any] = {"type": part["type"]}
    if part["type"] == "input_image":
        url = part.get("image_url") or ""
        kept.update(image_url=None if url.startswith("data:") else url, detail="auto")
    elif part["type"] == "input_audio":
        kept["input_audio"] = {"format": part["input_audio"]["format"]}
    else:
        url = part[part["type"]]["url"]
        kept[part["type"]] = {"url": None if url.startswith("data:") else url}
    return {**kept, "modality": media.modality, "sha256": media.sha256}


def _chat_request(
    request: ResponsesRequest, messages: list[Message], origins: list[str]
) -> ChatCompletionRequest:
    form = request.text.format if request.text else None
    response_format = None
    if form is not None:
        schema = None
        if form.type == "json_schema":
            schema = JSONSchemaFormat.model_validate(
                {"name": form.name, "description": form.description, "schema": form.schema_}
                | {"strict": form.strict}
            )
        response_format = ResponseFormat(type=form.type, json_schema=schema)
    tools = [
        ChatCompletionTool(
            type="function",
            function=FunctionDefinition(
                name=t.name, description=t.description, parameters=t.parameters, strict=t.strict
            ),
        )
        for t in request.tools or []
        if isinstance(t, FunctionTool)
    ]
    choice = request.tool_choice
    if isinstance(choice, ToolChoiceFunction):
        choice = NamedToolChoice(type="function", function=NamedFunction(name=choice.name))
    if request.tools and (choice == "required" or isinstance(choice, NamedToolChoice)):
        # text.format shapes text; a forced call writes none (OpenAI accepts both together).
        response_format = None
    parallel = request.parallel_tool_calls is not False and request.max_tool_calls != 1
    try:
        return ChatCompletionRequest(
            messages=messages,
            model=request.model,
            max_completion_tokens=request.max_output_tokens,
            parallel_tool_calls=parallel,
            response_format=response_format,
            temperature=request.temperature,
            top_p=request.top_p,
            tool_choice=choice,
            tools=tools or None,
            user=request.user,
            top_k=request.top_k,
            ignore_eos=request.ignore_eos,
            priority=request.priority,
        )
    except ValidationError as exc:  # a bound of the chat schema (messages, tools, ...)
        error = exc.errors()[0]
        param = rename_param(param_from_loc(error["loc"]), origins)
        raise InvalidRequest(f"{error['msg']} (parameter '{param}')", param=param) from exc


_RENAMES = [
    (re.compile(r"^response_format\.json_schema\.(schema|name)"), r"text.format.\1"),
    (re.compile(r"^response_format(\.json_schema)?"), "text.format"),
    (re.compile(r"^tools\.(\d+)\.function\."), r"tools.\1."),
    (re.compile(r"^tool_choice\.function\.name"), "tool_choice.name"),
    (re.compile(r"^max_completion_tokens"), "max_output_tokens"),
    (re.compile(r"\.image_url\.url$"), ".image_url"),
    (re.compile(r"\.tool_call_id$"), ".call_id"),
]


def rename_param(param: str | None, origins: list[str]) -> str | None:
    """A chat parameter name as this request's (see the module docstring)."""
    if param is None:
        return None
    match = re.match(r"^messages(?:\.(\d+))?", param)
    if match is not None:
        index = match.group(1)
        if index is None or int(index) >= len(origins):
            return "input"
        origin = origins[int(index)]
        tail = param[match.end() :] if origin.startswith("input.") else ""
        param = origin + tail
    for pattern, replacement in _RENAMES:
        param = pattern.sub(replacement, param)
    return param
