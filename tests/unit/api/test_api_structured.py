"""response_format, tools and request limits at the gateway, over real HTTP with the
`openai` client; the worker is scripted (what the engine would have written), so
these check the job the gateway builds and the reply it shapes. The real engine's
side is in tests/e2e (test_serve.py, test_split.py via tests/e2e/structured.py)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator

import pytest

from service.api.chat_completion import size_limits
from service.contract import ChatDelta, ChatEvent, ChatJob, ChatUsage
from tests.unit.api.conftest import Gateway, GatewayFactory, bad_request
from tests.utils.fake_worker import MODEL, ScriptedWorker

USER = [{"role": "user", "content": "weather in Paris?"}]
PARAMS = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
    "required": ["city"],
    "additionalProperties": False,
}
TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "parameters": PARAMS}},
    {"type": "function", "function": {"name": "get_time"}},
]
CALL = '{"name":"get_weather","arguments":{"city":"Paris","days":2}}'


def scripted(text: str) -> ScriptedWorker:
    """A worker whose every choice writes `text` in three pieces, then stops."""

    async def chat(job: ChatJob) -> AsyncIterator[ChatEvent]:
        third = max(1, len(text) // 3)
        pieces = [text[:third], text[third : 2 * third], text[2 * third :]]
        for index in range(job.sampling.n):
            for i, piece in enumerate(pieces):
                finish = "stop" if i == len(pieces) - 1 else None
                yield ChatDelta(index=index, text=piece, token_count=1, finish_reason=finish)
        yield ChatUsage(prompt_tokens=5, completion_tokens=3 * job.sampling.n)

    return ScriptedWorker(chat)


@pytest.fixture
def tool_gateway(gateway_factory: GatewayFactory) -> Iterator[Gateway]:
    with gateway_factory(scripted(CALL)) as gw:
        yield gw


def test_response_formats_travel_as_constraints(gateway: Gateway) -> None:
    client = gateway.client()
    schema = {"type": "object", "properties": {"a": {"enum": ["x", "y"]}}}
    client.chat.completions.create(
        model=MODEL, messages=USER, response_format={"type": "json_object"}
    )
    assert gateway.worker.jobs[-1].sampling.constraint is not None
    assert gateway.worker.jobs[-1].sampling.constraint.kind == "json_object"
    form = {"type": "json_schema", "json_schema": {"name": "s", "schema": schema, "strict": True}}
    client.chat.completions.create(model=MODEL, messages=USER, response_format=form)  # type: ignore[arg-type]
    constraint = gateway.worker.jobs[-1].sampling.constraint
    assert constraint is not None and constraint.json_schema == schema
    client.chat.completions.create(
        model=MODEL, messages=USER, extra_body={"structured_outputs": {"choice": ["yes", "no"]}}
    )
    constraint = gateway.worker.jobs[-1].sampling.constraint
    assert constraint is not None and constraint.choice == ["yes", "no"]
    # plain text, and empty tools, stay unconstrained
    client.chat.completions.create(
        model=MODEL, messages=USER, tools=[], response_format={"type": "text"}
    )
    assert gateway.worker.jobs[-1].sampling.constraint is None


def test_named_tool_call_is_constrained_and_shaped(tool_gateway: Gateway) -> None:
    reply = tool_gateway.client().chat.completions.create(
        model=MODEL,
        messages=USER,
        tools=TOOLS,  # type: ignore[arg-type]
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        parallel_tool_calls=False,
    )
    job = tool_gateway.worker.jobs[-1]
    constraint = job.sampling.constraint
    assert constraint is not None and constraint.kind == "json_schema"
    assert constraint.json_schema is not None
    assert constraint.json_schema["properties"]["name"] == {"const": "get_weather"}
    assert constraint.json_schema["properties"]["arguments"] == PARAMS
    assert job.system is not None and "get_weather" in job.system  # tools shown to the model
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    calls = choice.message.tool_calls
    assert calls is not None and len(calls) == 1
    assert calls[0].id.startswith("call_") and calls[0].type == "function"
    assert calls[0].function.name == "get_weather"  # type: ignore[union-attr]
    assert json.loads(calls[0].function.arguments) == {"city": "Paris", "days": 2}  # type: ignore[union-attr]


def test_named_tool_choice_is_one_call_even_with_parallel_calls_on(
    tool_gateway: Gateway,
) -> None:
    """OpenAI and vLLM answer a named choice with exactly one call: the grammar is one
    call object, not a list, whatever `parallel_tool_calls` says."""
    for parallel in (None, True):
        extra = {} if parallel is None else {"parallel_tool_calls": parallel}
        reply = tool_gateway.client().chat.completions.create(
            model=MODEL,
            messages=USER,
            tools=TOOLS,  # type: ignore[arg-type]
            tool_choice={"type": "function", "function": {"name": "get_weather"}},
            **extra,  # type: ignore[arg-type]
        )
        constraint = tool_gateway.worker.jobs[-1].sampling.constraint
        assert constraint is not None and constraint.json_schema is not None
        assert constraint.json_schema["type"] == "object"
        assert constraint.json_schema["properties"]["name"] == {"const": "get_weather"}
        assert "list" not in (tool_gateway.worker.jobs[-1].system or "")
        calls = reply.choices[0].message.tool_calls
        assert calls is not None and len(calls) == 1


def test_required_streamed_calls_assemble_in_the_client(gateway_factory: GatewayFactory) -> None:
    with gateway_factory(scripted(f"[{CALL},{CALL}]")) as gw:
        client = gw.client()
        with client.chat.completions.stream(
            model=MODEL, messages=USER, tools=TOOLS, tool_choice="required", n=2
        ) as stream:  # type: ignore[arg-type]
            for _ in stream:
                pass
            final = stream.get_final_completion()
        constraint = gw.worker.jobs[-1].sampling.constraint
    assert constraint is not None and constraint.json_schema is not None
    assert constraint.json_schema["type"] == "array"
    assert len(constraint.json_schema["items"]["anyOf"]) == 2
    for choice in final.choices:
        assert choice.finish_reason == "tool_calls"
        calls = choice.message.tool_calls or []
        assert [c.function.name for c in calls] == ["get_weather", "get_weather"]  # type: ignore[union-attr]
        assert json.loads(calls[1].function.arguments)["city"] == "Paris"  # type: ignore[union-attr]
        assert calls[0].id != calls[1].id


def test_auto_parses_marked_calls_and_keeps_the_text(gateway_factory: GatewayFactory) -> None:
    with gateway_factory(scripted(f"Let me check.<tool_call>{CALL}</tool_call>")) as gw:
        reply = gw.client().chat.completions.create(
            model=MODEL, messages=USER, tools=TOOLS, tool_choice="auto"
        )  # type: ignore[arg-type]
        constraint = gw.worker.jobs[-1].sampling.constraint
    assert constraint is not None and constraint.kind == "structural_tag"
    message = reply.choices[0].message
    assert message.content == "Let me check."
    assert message.tool_calls and message.tool_calls[0].function.name == "get_weather"  # type: ignore[union-attr]


def test_tool_results_are_rendered_into_the_conversation(tool_gateway: Gateway) -> None:
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
    }
    messages = [
        *USER,
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": "18 C, sunny"},
    ]
    tool_gateway.client().chat.completions.create(
        model=MODEL, messages=messages, tools=TOOLS, tool_choice="none"
    )  # type: ignore[arg-type]
    job = tool_gateway.worker.jobs[-1]
    assert job.sampling.constraint is None and job.system is None  # "none": tools not shown
    assert job.turns[0].assistant == (
        '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>'
    )
    assert job.turns[1].user.text == (
        '<tool_response>{"name": "get_weather", "content": "18 C, sunny"}</tool_response>'
    )
    unknown = [*messages[:2], {**messages[2], "tool_call_id": "call_9"}]
    body = bad_request(
        lambda: tool_gateway.client().chat.completions.create(model=MODEL, messages=unknown)
    )
    assert body["param"] == "messages.2.tool_call_id"


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        (
            {"tool_choice": {"type": "function", "function": {"name": "nope"}}, "tools": TOOLS},
            "tool_choice.function.name",
        ),
        ({"tool_choice": "required"}, "tool_choice"),
        ({"tools": [*TOOLS, TOOLS[0]]}, "tools.2.function.name"),
        (
            {"tools": [{"type": "function", "function": {"name": "bad name"}}]},
            "tools.0.function.name",
        ),
        (
            {"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": 5}}}]},
            "tools.0.function.parameters",
        ),
        (
            {"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}},
            "response_format.json_schema",
        ),
        (
            {
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "x", "schema": {"minimum": "low"}},
                }
            },
            "response_format.json_schema.schema",
        ),
        (
            {"response_format": {"type": "json_object"}, "tools": TOOLS, "tool_choice": "required"},
            "tool_choice",
        ),
        ({"response_format": {"type": "xml"}}, "response_format.type"),
    ],
)
def test_unservable_constraints_are_400_naming_the_parameter(
    gateway: Gateway, extra: dict[str, object], param: str
) -> None:
    body = bad_request(
        lambda: gateway.client().chat.completions.create(
            model=MODEL, messages=USER, extra_body=extra
        )
    )
    assert body["param"] == param, body
    assert gateway.worker.jobs == []  # refused before any work


def _deep(depth: int) -> dict[str, object]:
    schema: dict[str, object] = {"type": "integer"}
    for _ in range(depth):
        schema = {"type": "array", "items": schema}
    return schema


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"messages": USER * (size_limits.MAX_MESSAGES + 1)}, "messages"),
        (
            {"messages": [{"role": "user", "content": [{"type": "text", "text": "x"}] * 65}]},
            "messages.0.content",
        ),
        (
            {"messages": [{"role": "user", "content": "x" * (size_limits.MAX_TEXT_CHARS + 1)}]},
            "messages.0.content",
        ),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"stop": ["x" * 257]}, "stop.0"),
        ({"stop": "x" * 257}, "stop"),
        ({"user": "u" * 257}, "user"),
        ({"tools": [TOOLS[1]] * (size_limits.MAX_TOOLS + 1)}, "tools"),
        (
            {"tools": [{"type": "function", "function": {"name": "f", "parameters": _deep(17)}}]},
            "tools.0.function.parameters",
        ),
        (
            {
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "x", "schema": {"enum": ["v" * 100] * 400}},
                }
            },
            "response_format.json_schema.schema",
        ),
        ({"n": 4, "max_tokens": 10_000}, "max_tokens"),
        ({"structured_outputs": {"choice": ["a"] * 65}}, "structured_outputs.choice"),
    ],
)
def test_over_limit_fields_are_400_naming_the_parameter(
    gateway: Gateway, extra: dict[str, object], param: str
) -> None:
    body = {"model": MODEL, "messages": USER, **extra}
    if "structured_outputs" in body:  # vLLM's extension: the client takes it as extra body
        body["extra_body"] = {"structured_outputs": body.pop("structured_outputs")}
    reply = bad_request(
        lambda: gateway.client().chat.completions.create(**body)  # type: ignore[call-overload]
    )
    assert reply["param"] == param, reply
    # simple lengths are in the request schema (invalid_value), the rest checked in code
    assert reply["code"] in {"limit_exceeded", "invalid_value"}
    assert gateway.worker.jobs == []
