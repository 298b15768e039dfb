"""Structured outputs and tool calls against a running service (real engine, demo
weights), shared by test_serve.py (all-in-one) and test_split.py (gateway + workers),
so each runs on the servers those modules already start.

The demo weights are random, so only the grammar makes the output JSON: every
completion that finishes with "stop" must validate against its schema (checked with
`jsonschema`). The schemas are bounded (enums, integer ranges, short strings,
arrays with maxItems, additionalProperties false, all properties required), so
a grammar-led completion ends well within max_tokens and finishes with "stop".
"""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import openai
import pytest

from tests.utils.media import data_url, image_part, user

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "kind": {"enum": ["bird", "dog", "car"]},
        "count": {"type": "integer", "minimum": 0, "maximum": 9},
        "label": {"type": "string", "maxLength": 4},
        "place": {
            "type": "object",
            "properties": {
                "indoor": {"type": "boolean"},
                "floor": {"type": "integer", "minimum": -2, "maximum": 20},
            },
            "required": ["indoor", "floor"],
            "additionalProperties": False,
        },
        "colours": {
            "type": "array",
            "items": {"enum": ["red", "green", "blue"]},
            "minItems": 1,
            "maxItems": 3,
        },
    },
    "required": ["kind", "count", "label", "place", "colours"],
    "additionalProperties": False,
}
WEATHER = {
    "type": "object",
    "properties": {
        "unit": {"enum": ["c", "f"]},
        "days": {"type": "integer", "minimum": 1, "maximum": 7},
    },
    "required": ["unit", "days"],
    "additionalProperties": False,
}
TOOLS: list[Any] = [
    {"type": "function", "function": {"name": "get_weather", "parameters": WEATHER}},
    {
        "type": "function",
        "function": {
            "name": "count_birds",
            "parameters": {
                "type": "object",
                "properties": {"n": {"type": "integer", "minimum": 0, "maximum": 99}},
                "required": ["n"],
                "additionalProperties": False,
            },
        },
    },
]
PARAMETERS = {t["function"]["name"]: t["function"]["parameters"] for t in TOOLS}
NAMED: Any = {"type": "function", "function": {"name": "get_weather"}}
FORMAT: Any = {"type": "json_schema", "json_schema": {"name": "scene", "schema": SCHEMA}}
BUDGET = 160  # max_tokens: the longest SCHEMA answer is far shorter


def image_question(text: str = "What is in this image?") -> list[Any]:
    return [user(text, image_part(data_url("bird_image.jpg")))]


def check_json_schema(client: openai.OpenAI, model: str, media: bool = True) -> None:
    """Nested object, enums, bounded array, integer ranges, additionalProperties false;
    n=2 with logprobs, with an image in the same request."""
    messages = image_question() if media else [user("Describe a scene.")]
    reply = client.chat.completions.create(
        model=model,
        messages=messages,
        response_format=FORMAT,
        max_tokens=BUDGET,
        n=2,
        temperature=1.0,
        top_p=1.0,
        logprobs=True,
    )
    for choice in reply.choices:
        assert choice.finish_reason == "stop", choice
        jsonschema.validate(json.loads(choice.message.content or ""), SCHEMA)
        assert choice.logprobs is not None and choice.logprobs.content


def check_json_schema_streamed(client: openai.OpenAI, model: str) -> None:
    stream = client.chat.completions.create(
        model=model, messages=image_question(), response_format=FORMAT, max_tokens=BUDGET,
        stream=True,
    )  # fmt: skip
    chunks = [c for c in stream if c.choices]
    assert chunks[-1].choices[0].finish_reason == "stop"
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    jsonschema.validate(json.loads(text), SCHEMA)


def check_json_object(client: openai.OpenAI, model: str) -> None:
    reply = client.chat.completions.create(
        model=model,
        messages=[user("Answer in JSON.")],
        response_format={"type": "json_object"},
        max_tokens=48,
        n=2,
        temperature=1.0,
        top_p=1.0,
    )
    finished = [c for c in reply.choices if c.finish_reason == "stop"]
    for choice in finished:
        assert isinstance(json.loads(choice.message.content or ""), dict)
    if not finished:
        pytest.skip("no json_object completion finished within 48 random-weight tokens")


def _check_calls(calls: Any, names: set[str], single: bool) -> list[Any]:
    assert calls, "no tool calls"
    if single:
        assert len(calls) == 1
    for call in calls:
        assert call.id.startswith("call_") and call.type == "function"
        assert call.function.name in names
        jsonschema.validate(json.loads(call.function.arguments), PARAMETERS[call.function.name])
    assert len({call.id for call in calls}) == len(calls)
    return list(calls)


def check_named_tool_call(client: openai.OpenAI, model: str) -> Any:
    """A named call, non-streaming, with an image; returns the assistant message."""
    reply = client.chat.completions.create(
        model=model,
        messages=image_question("What's the weather like where this was taken?"),
        tools=TOOLS,
        tool_choice=NAMED,
        parallel_tool_calls=False,
        max_tokens=BUDGET,
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls", choice
    assert choice.message.content is None
    _check_calls(choice.message.tool_calls, {"get_weather"}, single=True)
    return choice.message


def check_required_tool_calls_streamed(client: openai.OpenAI, model: str) -> None:
    """ "required" with parallel calls, streamed; the client assembles the calls."""
    with client.chat.completions.stream(
        model=model,
        messages=[user("Check the weather and count the birds.")],
        tools=TOOLS,
        tool_choice="required",
        max_tokens=4 * BUDGET,
    ) as stream:
        for _ in stream:
            pass
        final = stream.get_final_completion()
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls", choice
    _check_calls(choice.message.tool_calls, set(PARAMETERS), single=False)


def check_named_tool_call_streamed(client: openai.OpenAI, model: str) -> None:
    """`parallel_tool_calls` left at its default (true): a named choice is still one call."""
    with client.chat.completions.stream(
        model=model, messages=image_question(), tools=TOOLS, tool_choice=NAMED,
        max_tokens=BUDGET,
    ) as stream:  # fmt: skip
        for _ in stream:
            pass
        final = stream.get_final_completion()
    _check_calls(final.choices[0].message.tool_calls, {"get_weather"}, single=True)


def check_tool_result_follow_up(client: openai.OpenAI, model: str) -> None:
    """The call, its result as a `tool` message, and the next answer (free text)."""
    message = check_named_tool_call(client, model)
    call = message.tool_calls[0]
    messages = [
        *image_question("What's the weather like where this was taken?"),
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": '{"temperature": 18}'},
    ]
    reply = client.chat.completions.create(
        model=model, messages=messages, tools=TOOLS, max_tokens=8
    )
    choice = reply.choices[0]
    assert choice.finish_reason in {"stop", "length", "tool_calls"}
    assert reply.usage is not None and reply.usage.prompt_tokens > 0


def bad_request(call: Any) -> dict[str, Any]:
    with pytest.raises(openai.BadRequestError) as info:
        call()
    assert isinstance(info.value.body, dict)
    return info.value.body


def check_refusals(client: openai.OpenAI, model: str) -> None:
    """Schemas the grammar compiler rejects (valid JSON Schema, so the worker finds them),
    an unknown tool name and an over-limit field: 400s naming the parameter."""
    dangling = {"type": "object", "properties": {"a": {"$ref": "#/$defs/missing"}}}
    form: Any = {"type": "json_schema", "json_schema": {"name": "x", "schema": dangling}}
    body = bad_request(
        lambda: client.chat.completions.create(
            model=model, messages=[user("Hi")], response_format=form, max_tokens=4
        )
    )
    assert body["param"] == "response_format" and "missing" in body["message"]
    tools: Any = [{"type": "function", "function": {"name": "f", "parameters": dangling}}]
    body = bad_request(
        lambda: client.chat.completions.create(
            model=model, messages=[user("Hi")], tools=tools, tool_choice="required", max_tokens=4
        )
    )
    assert body["param"] == "tools"
    unknown: Any = {"type": "function", "function": {"name": "nope"}}
    body = bad_request(
        lambda: client.chat.completions.create(
            model=model, messages=[user("Hi")], tools=TOOLS, tool_choice=unknown, max_tokens=4
        )
    )
    assert body["param"] == "tool_choice.function.name"
    body = bad_request(
        lambda: client.chat.completions.create(
            model=model, messages=[user("Hi")], stop=["a", "b", "c", "d", "e"], max_tokens=4
        )
    )
    assert body["param"] == "stop"
