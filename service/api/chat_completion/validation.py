"""Every check of a chat request against a bound or the server's settings, before
any work (no media fetched, no schema compiled, no job built): each overrun is a
400 that names the parameter. The README's "Request limits" table lists them.

Single-field and cross-field rules that need no settings are the schema's own
(`protocol.py`); what depends on the server is here: the documented bounds
(`size_limits.py`), `max_n` and `max_total_tokens`, the media items a request
may carry (chat and embeddings alike), and max_tokens against the model's context.

The body cap (`max_body_bytes`) bounds what arrives at all; these bound what a
valid body may ask of the service: how much text to tokenize, how large a
grammar to compile, how many tokens to generate.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from service.api.chat_completion.protocol import (
    AssistantMessage,
    ChatCompletionRequest,
    ToolMessage,
)
from service.api.chat_completion.size_limits import (
    MAX_CHOICE_CHARS,
    MAX_CHOICES,
    MAX_CONTENT_PARTS,
    MAX_DESCRIPTION_CHARS,
    MAX_ID_CHARS,
    MAX_MESSAGES,
    MAX_NAME_CHARS,
    MAX_REGEX_CHARS,
    MAX_SCHEMA_BYTES,
    MAX_SCHEMA_DEPTH,
    MAX_STOP,
    MAX_STOP_CHARS,
    MAX_TEXT_CHARS,
    MAX_TOOL_CALLS,
    MAX_TOOLS,
    MAX_TOOLS_BYTES,
)
from service.config import RequestLimitSettings
from service.errors import ContextLengthExceeded, InvalidRequest

FUNCTION_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


def _refuse(param: str, message: str) -> InvalidRequest:
    return InvalidRequest(message, param=param, code="limit_exceeded")


def _short(value: str | None, param: str, limit: int = MAX_ID_CHARS) -> None:
    if value is not None and len(value) > limit:
        raise _refuse(param, f"{param} is {len(value)} characters long; at most {limit}.")


def json_depth(value: Any) -> int:
    """How deeply objects and arrays nest in `value` (a scalar is 0), without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return deepest


def check_schema_size(schema: Any, param: str) -> int:
    """Its size in bytes as compact JSON; a 400 if too large or too deep."""
    depth = json_depth(schema)
    if depth > MAX_SCHEMA_DEPTH:
        raise _refuse(param, f"{param} nests {depth} levels deep; at most {MAX_SCHEMA_DEPTH}.")
    size = len(json.dumps(schema, separators=(",", ":")).encode())
    if size > MAX_SCHEMA_BYTES:
        raise _refuse(param, f"{param} is {size} bytes as JSON; at most {MAX_SCHEMA_BYTES}.")
    return size


def _texts(request: ChatCompletionRequest) -> Iterable[tuple[str, int]]:
    """(param, length) of each text in the messages."""
    for i, message in enumerate(request.messages):
        content = message.content
        if isinstance(content, str):
            yield f"messages.{i}.content", len(content)
        elif content is not None:
            for j, part in enumerate(content):
                text = getattr(part, "text", None)
                if isinstance(text, str):
                    yield f"messages.{i}.content.{j}.text", len(text)
        if isinstance(message, AssistantMessage):
            for j, call in enumerate(message.tool_calls or []):
                size = len(call.function.arguments) + len(call.function.name)
                yield f"messages.{i}.tool_calls.{j}.function.arguments", size


def _check_messages(request: ChatCompletionRequest) -> None:
    if len(request.messages) > MAX_MESSAGES:
        raise _refuse("messages", f"{len(request.messages)} messages; at most {MAX_MESSAGES}.")
    for i, message in enumerate(request.messages):
        if isinstance(message.content, list) and len(message.content) > MAX_CONTENT_PARTS:
            raise _refuse(
                f"messages.{i}.content",
                f"{len(message.content)} content parts; at most {MAX_CONTENT_PARTS}.",
            )
        _short(getattr(message, "name", None), f"messages.{i}.name")
        if isinstance(message, ToolMessage):
            _short(message.tool_call_id, f"messages.{i}.tool_call_id")
        if isinstance(message, AssistantMessage) and message.tool_calls:
            if len(message.tool_calls) > MAX_TOOL_CALLS:
                raise _refuse(
                    f"messages.{i}.tool_calls",
                    f"{len(message.tool_calls)} tool calls; at most {MAX_TOOL_CALLS}.",
                )
            for j, call in enumerate(message.tool_calls):
                _short(call.id, f"messages.{i}.tool_calls.{j}.id")
    total = 0
    for param, length in _texts(request):
        total += length
        if total > MAX_TEXT_CHARS:
            raise _refuse(
                param, f"The messages hold more than {MAX_TEXT_CHARS} characters of text."
            )


def _check_tools(request: ChatCompletionRequest) -> None:
    tools = request.tools or []
    if len(tools) > MAX_TOOLS:
        raise _refuse("tools", f"{len(tools)} tools; at most {MAX_TOOLS}.")
    total = 0
    for i, tool in enumerate(tools):
        function = tool.function
        if not FUNCTION_NAME.fullmatch(function.name):
            raise InvalidRequest(
                f"Function names are 1-{MAX_NAME_CHARS} characters of a-z, A-Z, 0-9, _ and -"
                f" (got {function.name[:80]!r}).",
                param=f"tools.{i}.function.name",
            )
        _short(function.description, f"tools.{i}.function.description", MAX_DESCRIPTION_CHARS)
        if function.parameters is not None:
            total += check_schema_size(function.parameters, f"tools.{i}.function.parameters")
        if total > MAX_TOOLS_BYTES:
            raise _refuse("tools", f"The tools' schemas exceed {MAX_TOOLS_BYTES} bytes as JSON.")


def _check_constraints(request: ChatCompletionRequest) -> None:
    form = request.response_format
    if form is not None and form.json_schema is not None and form.json_schema.schema_:
        check_schema_size(form.json_schema.schema_, "response_format.json_schema.schema")
    if form is not None and form.json_schema is not None:
        _short(form.json_schema.name, "response_format.json_schema.name", MAX_NAME_CHARS)
    extension = request.structured_outputs
    if extension is None:
        return
    _short(extension.regex, "structured_outputs.regex", MAX_REGEX_CHARS)
    if extension.choice is not None:
        if len(extension.choice) > MAX_CHOICES:
            raise _refuse(
                "structured_outputs.choice",
                f"{len(extension.choice)} choices; at most {MAX_CHOICES}.",
            )
        for j, choice in enumerate(extension.choice):
            _short(choice, f"structured_outputs.choice.{j}", MAX_CHOICE_CHARS)


def check_request(request: ChatCompletionRequest, limits: RequestLimitSettings) -> None:
    """Every bound and server limit; the first one exceeded is the 400."""
    _short(request.model, "model")
    _short(request.user, "user")
    _check_messages(request)
    stops = [request.stop] if isinstance(request.stop, str) else request.stop or []
    if len(stops) > MAX_STOP:
        raise _refuse("stop", f"{len(stops)} stop sequences; at most {MAX_STOP}.")
    for j, stop in enumerate(stops):
        _short(stop, f"stop.{j}" if isinstance(request.stop, list) else "stop", MAX_STOP_CHARS)
    _check_tools(request)
    _check_constraints(request)
    max_tokens = request.max_completion_tokens or request.max_tokens
    if max_tokens is not None and request.n * max_tokens > limits.max_total_tokens:
        param = _max_tokens_param(request)
        raise _refuse(
            param,
            f"n × {param} is {request.n * max_tokens}; at most {limits.max_total_tokens} tokens "
            "per request.",
        )
    if request.n > limits.max_n:
        raise InvalidRequest(
            f"n must be at most {limits.max_n} (got {request.n}).",
            param="n",
            code="invalid_value",
        )


def check_context(request: ChatCompletionRequest, max_model_len: int) -> None:
    """A max_tokens that cannot fit the context even beside a one-token prompt is a 400."""
    param = _max_tokens_param(request)
    max_tokens = request.max_completion_tokens or request.max_tokens
    if max_tokens is not None and max_tokens >= max_model_len:
        raise ContextLengthExceeded(
            f"{param} is {max_tokens}, but the model's context length is {max_model_len} "
            "tokens (prompt included).",
            param=param,
        )


def check_media_count(count: int, limit: int, param: str) -> None:
    """`max_media_items`: a 400 naming the item past the limit (or the whole input)."""
    if count > limit:
        raise InvalidRequest(f"At most {limit} media items per request.", param=param)


def _max_tokens_param(request: ChatCompletionRequest) -> str:
    return "max_completion_tokens" if request.max_completion_tokens else "max_tokens"
