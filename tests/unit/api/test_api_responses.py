"""`/v1/responses` at the gateway, over real HTTP with the official `openai` client; the
worker is scripted (through the `Worker` interface), so these check the job the
gateway builds from a Responses request and the response and events it shapes.
The real engine's side is in tests/e2e/test_responses.py."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import httpx
import openai
import pytest

from service.contract import ChatDelta, ChatEvent, ChatJob, ChatUsage, WorkerErrorEvent
from tests.unit.api.conftest import Gateway, GatewayFactory, bad_request
from tests.utils.fake_worker import MODEL, ScriptedWorker
from tests.utils.media import data_url

PARAMS = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
    "additionalProperties": False,
}
TOOLS = [{"type": "function", "name": "get_weather", "parameters": PARAMS}]
CALL = '{"name":"get_weather","arguments":{"city":"Paris"}}'


def scripted(text: str, finish: str = "stop", delay: float = 0.0) -> ScriptedWorker:
    async def chat(job: ChatJob) -> AsyncIterator[ChatEvent]:
        half = max(1, len(text) // 2)
        for i, piece in enumerate([text[:half], text[half:]]):
            await asyncio.sleep(delay)
            yield ChatDelta(index=0, text=piece, token_count=1, finish_reason=finish if i else None)
        yield ChatUsage(prompt_tokens=5, completion_tokens=2)

    return ScriptedWorker(chat)


def test_create_text_response(gateway: Gateway) -> None:
    client = gateway.client()
    response = client.responses.create(
        model=MODEL, input="hello there", instructions="Be brief.", metadata={"k": "v"}
    )
    assert response.id.startswith("resp_") and response.object == "response"
    assert response.status == "completed" and response.output_text == "echo: hello there"
    assert response.output[0].type == "message" and response.output[0].role == "assistant"
    assert response.usage is not None and response.usage.input_tokens == 7
    assert response.usage.total_tokens == response.usage.input_tokens + response.usage.output_tokens
    assert response.metadata == {"k": "v"} and response.instructions == "Be brief."
    job = gateway.worker.jobs[-1]
    assert job.system == "Be brief." and job.turns[-1].user.text == "hello there"


def test_metrics_count_the_endpoint_like_chat(gateway: Gateway) -> None:
    client = gateway.client()
    client.responses.create(model=MODEL, input="one")
    with client.responses.stream(model=MODEL, input="two") as stream:
        stream.get_final_response()
    labels = {"endpoint": "responses", "outcome": "ok", "model": MODEL}
    assert gateway.metric("pandagpt_e2e_request_latency_seconds_count", labels) == 2
    assert gateway.metric("pandagpt_time_to_first_token_seconds_count", {"model": MODEL}) == 2
    route = {"route": "/v1/responses", "method": "POST", "status": "200"}
    assert gateway.metric("pandagpt_http_requests_total", route) == 2


def test_stored_response_can_be_retrieved_listed_and_deleted(gateway: Gateway) -> None:
    client = gateway.client()
    created = client.responses.create(model=MODEL, input="one two")
    again = client.responses.retrieve(created.id)
    assert again.id == created.id and again.output_text == created.output_text
    items = client.responses.input_items.list(created.id)
    assert [item.type for item in items.data] == ["message"]
    assert items.data[0].role == "user"  # type: ignore[union-attr]
    deleted = client.responses.delete(created.id)
    assert deleted is None or getattr(deleted, "deleted", True)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(created.id)


def test_store_false_is_not_kept(gateway: Gateway) -> None:
    client = gateway.client()
    created = client.responses.create(model=MODEL, input="hi", store=False)
    assert created.status == "completed"
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(created.id)


def test_previous_response_id_continues_the_conversation(gateway: Gateway) -> None:
    client = gateway.client()
    first = client.responses.create(model=MODEL, input="first question")
    second = client.responses.create(
        model=MODEL, input="second question", previous_response_id=first.id
    )
    assert second.previous_response_id == first.id
    job = gateway.worker.jobs[-1]
    assert [t.user.text for t in job.turns] == ["first question", "second question"]
    assert job.turns[0].assistant == first.output_text
    with pytest.raises(openai.NotFoundError) as info:
        client.responses.create(model=MODEL, input="x", previous_response_id="resp_missing")
    assert info.value.body["param"] == "previous_response_id"  # type: ignore[index]


def test_media_of_earlier_turns_travel_as_references(gateway: Gateway) -> None:
    """The second turn sends no bytes of the first turn's image: (modality, sha256) only."""
    client = gateway.client()
    image = data_url("dog_image.jpg")
    first = client.responses.create(
        model=MODEL,
        input=[
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "what is this"},
                    {"type": "input_image", "image_url": image, "detail": "auto"},
                ],
            }
        ],
    )
    sent = gateway.worker.jobs[-1].turns[0].user.media[0]
    assert sent.data and sent.modality == "image"
    client.responses.create(model=MODEL, input="and now?", previous_response_id=first.id)
    ref = gateway.worker.jobs[-1].turns[0].user.media[0]
    assert ref.data == b"" and ref.sha256 == sent.sha256 and ref.modality == "image"
    stored = client.responses.input_items.list(first.id).data[0]
    part = stored.content[1]  # type: ignore[union-attr]
    assert part.type == "input_image" and part.image_url is None  # no data URL kept
    assert getattr(part, "sha256", None) == sent.sha256


def test_stream_event_sequence_assembles_in_the_client(gateway: Gateway) -> None:
    client = gateway.client()
    with client.responses.stream(model=MODEL, input="stream me please") as stream:
        events = list(stream)
        final = stream.get_final_response()
    kinds = [event.type for event in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    for kind in (
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
    ):
        assert kind in kinds
    assert [event.sequence_number for event in events] == list(range(len(events)))
    assert final.output_text == "echo: stream me please" and final.status == "completed"
    assert client.responses.retrieve(final.id).output_text == final.output_text


def test_named_tool_choice_gives_one_function_call(gateway_factory: GatewayFactory) -> None:
    with gateway_factory(scripted(CALL)) as gw:
        client = gw.client()
        response = client.responses.create(
            model=MODEL,
            input="weather?",
            tools=TOOLS,  # type: ignore[arg-type]
            tool_choice={"type": "function", "name": "get_weather"},
        )
        constraint = gw.worker.jobs[-1].sampling.constraint
        assert constraint is not None and constraint.json_schema is not None
        assert constraint.json_schema["type"] == "object"  # one call, not a list
        calls = [item for item in response.output if item.type == "function_call"]
        assert len(calls) == 1 and calls[0].name == "get_weather"
        assert json.loads(calls[0].arguments) == {"city": "Paris"}
        assert calls[0].call_id.startswith("call_")
        with client.responses.stream(
            model=MODEL, input="weather?", tools=TOOLS, tool_choice="required"
        ) as stream:  # type: ignore[arg-type]
            kinds = [event.type for event in stream]
            final = stream.get_final_response()
        assert "response.function_call_arguments.done" in kinds
        assert final.output[0].type == "function_call"
        # the call's result continues the conversation as a tool message
        follow = client.responses.create(
            model=MODEL,
            previous_response_id=response.id,
            input=[{"type": "function_call_output", "call_id": calls[0].call_id, "output": "18C"}],
        )
        assert follow.status == "completed"
        last = gw.worker.jobs[-1].turns[-1].user.text
        assert "<tool_response>" in last and "18C" in last


def test_max_output_tokens_cut_is_incomplete(gateway_factory: GatewayFactory) -> None:
    with gateway_factory(scripted("cut short", finish="length")) as gw:
        response = gw.client().responses.create(model=MODEL, input="x", max_output_tokens=2)
        assert gw.worker.jobs[-1].sampling.max_tokens == 2
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"


def test_text_format_json_schema_travels_as_a_constraint(gateway: Gateway) -> None:
    gateway.client().responses.create(
        model=MODEL,
        input="x",
        text={"format": {"type": "json_schema", "name": "w", "schema": PARAMS}},
    )
    constraint = gateway.worker.jobs[-1].sampling.constraint
    assert constraint is not None and constraint.json_schema == PARAMS


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"tools": [{"type": "web_search"}]}, "tools.0.type"),
        ({"reasoning": {"effort": "high"}}, "reasoning"),
        ({"include": ["message.output_text.logprobs"]}, "include"),
        ({"truncation": "auto"}, "truncation"),
        ({"background": True, "store": False}, "store"),
        ({"metadata": {f"k{i}": "v" for i in range(17)}}, "metadata"),
        ({"metadata": {"k": "v" * 513}}, "metadata.k"),
        ({"temperature": 3}, "temperature"),
        ({"max_output_tokens": 0}, "max_output_tokens"),
        ({"text": {"format": {"type": "json_schema", "name": "s"}}}, "text.format.schema"),
        ({"text": {"format": {"type": "json_schema", "name": "s", "schema": 3}}}, None),
        ({"tool_choice": {"type": "function", "name": "nope"}, "tools": TOOLS}, "tool_choice.name"),
        ({"tools": [{"type": "function", "name": "bad name!"}]}, "tools.0.name"),
        ({"previous_response_id": "r" * 300}, "previous_response_id"),
        ({"user": "u" * 300}, "user"),
        ({"instructions": "i" * 300_000}, "instructions"),
    ],
)
def test_bad_fields_are_400s_naming_them(
    gateway: Gateway, extra: dict[str, object], param: str | None
) -> None:
    body = bad_request(
        lambda: gateway.client().responses.create(model=MODEL, input="x", **extra)  # type: ignore[arg-type]
    )
    if param is not None:
        assert body["param"] == param, body


def test_bad_input_items_are_400s(gateway: Gateway) -> None:
    client = gateway.client()
    cases = [
        ([{"type": "reasoning", "summary": []}], "input.0"),
        ([{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}], "input.0"),
        ([{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}], None),
        ([{"type": "function_call_output", "call_id": "nope", "output": "x"}], "input.0"),
        ([{"role": "user", "content": [{"type": "input_text", "text": "x"}]}] * 300, "input"),
    ]
    for items, param in cases:
        body = bad_request(lambda: client.responses.create(model=MODEL, input=items))  # type: ignore[arg-type]  # noqa: B023
        if param is not None:
            assert str(body["param"]).startswith(param), body
    body = bad_request(
        lambda: client.responses.create(
            model=MODEL,
            input=[{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}],
        )
    )
    assert body["param"] == "input.0.content.0.file_id"


def test_media_errors_name_the_input_item(gateway: Gateway) -> None:
    body = bad_request(
        lambda: gateway.client().responses.create(
            model=MODEL,
            instructions="Shifts the chat message indices by one.",
            input=[
                {"role": "user", "content": "first"},
                {
                    "role": "user",
                    "content": [
                        {"type": "input_text", "text": "x"},
                        {"type": "input_image", "image_url": "data:image/png;base64,!!!"},
                    ],
                },
            ],
        )
    )
    assert body["param"] == "input.1.content.1.image_url", body


def test_a_failure_mid_stream_is_response_failed(gateway_factory: GatewayFactory) -> None:
    async def chat(job: ChatJob) -> AsyncIterator[ChatEvent]:
        yield ChatDelta(index=0, text="partial", token_count=1)
        yield WorkerErrorEvent(kind="WorkerFailed", message="the engine died")

    with gateway_factory(ScriptedWorker(chat)) as gw:
        client = gw.client()
        events = list(client.responses.create(model=MODEL, input="x", stream=True))
        assert events[-1].type == "response.failed"
        failed = events[-1].response  # type: ignore[union-attr]
        assert failed.status == "failed" and failed.error is not None
        assert failed.error.code == "server_error"
        assert client.responses.retrieve(failed.id).status == "failed"
        with pytest.raises(openai.BadRequestError) as info:  # not a conversation to go on from
            client.responses.create(model=MODEL, input="y", previous_response_id=failed.id)
        assert info.value.body["param"] == "previous_response_id"  # type: ignore[index]


def test_keys_see_only_their_own_responses(gateway_factory: GatewayFactory) -> None:
    keys = ["key-alpha-0123456789", "key-bravo-0123456789"]
    with gateway_factory(api_keys=keys) as gw:
        alpha, bravo = gw.client(api_key=keys[0]), gw.client(api_key=keys[1])
        created = alpha.responses.create(model=MODEL, input="mine")
        assert alpha.responses.retrieve(created.id).id == created.id
        with pytest.raises(openai.NotFoundError):
            bravo.responses.retrieve(created.id)
        with pytest.raises(openai.NotFoundError):
            bravo.responses.delete(created.id)
        with pytest.raises(openai.NotFoundError):
            bravo.responses.create(model=MODEL, input="x", previous_response_id=created.id)
        with pytest.raises(openai.NotFoundError):
            bravo.responses.input_items.list(created.id)


def test_background_is_polled_and_cancelled(gateway_factory: GatewayFactory) -> None:
    with gateway_factory(scripted("slow answer", delay=0.5)) as gw:
        client = gw.client()
        done = client.responses.create(model=MODEL, input="x", background=True)
        assert done.status == "queued" and done.background
        for _ in range(100):
            done = client.responses.retrieve(done.id)
            if done.status not in ("queued", "in_progress"):
                break
            asyncio.run(asyncio.sleep(0.05))
        assert done.status == "completed" and done.output_text == "slow answer"
        running = client.responses.create(model=MODEL, input="y", background=True)
        cancelled = client.responses.cancel(running.id)
        assert cancelled.status == "cancelled"
        assert client.responses.retrieve(running.id).status == "cancelled"
        with pytest.raises(openai.BadRequestError):
            client.responses.cancel(client.responses.create(model=MODEL, input="z").id)


def test_background_is_checked_before_it_is_queued(gateway: Gateway) -> None:
    """A bad tool schema is the POST's 400 (named as this API names it), not a queued
    response that fails later."""
    body = bad_request(
        lambda: gateway.client().responses.create(
            model=MODEL,
            input="x",
            background=True,
            tools=[{"type": "function", "name": "f", "parameters": {"type": 3}}],  # type: ignore[list-item]
        )
    )
    assert body["param"] == "tools.0.parameters"
    assert gateway.worker.jobs == []


def test_unknown_routes_and_ids_are_openai_errors(gateway: Gateway) -> None:
    response = httpx.get(f"{gateway.url}/v1/responses/resp_nope")
    assert response.status_code == 404 and response.json()["error"]["param"] == "response_id"
    listed = httpx.get(f"{gateway.url}/v1/responses/resp_nope/input_items?limit=0")
    assert listed.status_code == 400
