"""POST /v1/chat/completions through real HTTP with the official openai client."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import time
from collections.abc import AsyncIterator

import httpx
import openai
import pytest

from service.contract import ChatDelta, ChatEvent, ChatJob, ChatUsage, WorkerErrorEvent
from service.errors import ContextLengthExceeded, MediaInvalid, ServerBusy, Unavailable
from tests.unit.api.conftest import Gateway, GatewayFactory
from tests.utils import media_bytes
from tests.utils.fake_worker import MODEL, ScriptedWorker

USER = [{"role": "user", "content": "hello there"}]


def sse_events(text: str) -> list[str]:
    return [line[len("data: ") :] for line in text.splitlines() if line.startswith("data: ")]


def test_non_streaming_n2_and_usage(gateway: Gateway) -> None:
    reply = gateway.client().chat.completions.create(model=MODEL, messages=USER, n=2)
    assert reply.id.startswith("chatcmpl-")
    assert reply.object == "chat.completion"
    assert reply.model == MODEL
    assert [c.index for c in reply.choices] == [0, 1]
    assert all(c.message.content == "echo: hello there" for c in reply.choices)
    assert all(c.finish_reason == "stop" and c.message.role == "assistant" for c in reply.choices)
    assert reply.usage is not None
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (7, 6)
    assert reply.usage.total_tokens == 13
    assert gateway.metric("pandagpt_prompt_tokens_total", {"model": MODEL}) == 7
    assert gateway.metric("pandagpt_time_to_first_token_seconds_count", {"model": MODEL}) == 1


def test_all_parameters_reach_the_job(gateway: Gateway) -> None:
    gateway.client().chat.completions.create(
        model=MODEL,
        messages=USER,
        max_completion_tokens=12,
        max_tokens=99,  # the deprecated alias loses to max_completion_tokens
        temperature=0.5,
        top_p=0.9,
        n=1,
        stop="###",
        seed=7,
        presence_penalty=0.5,
        frequency_penalty=-0.5,
        user="u-1",
        extra_body={"top_k": 5, "ignore_eos": True, "brand_new_openai_field": {"x": 1}},
    )
    sampling = gateway.worker.jobs[-1].sampling
    assert sampling.max_tokens == 12
    assert (sampling.temperature, sampling.top_p, sampling.top_k, sampling.seed) == (0.5, 0.9, 5, 7)
    assert sampling.stop == ["###"]
    assert (sampling.presence_penalty, sampling.frequency_penalty) == (0.5, -0.5)
    assert sampling.ignore_eos is True


def test_precedence_request_then_server_then_reference(gateway_factory: GatewayFactory) -> None:
    with gateway_factory(default_max_tokens=64, default_top_p=0.5) as gw:
        gw.client().chat.completions.create(model=MODEL, messages=USER, top_p=0.2)
        sampling = gw.worker.jobs[-1].sampling
    assert sampling.top_p == 0.2  # request
    assert sampling.max_tokens == 64  # server default
    assert sampling.temperature is None  # reference default, applied by the worker


@pytest.mark.parametrize(
    ("field", "value", "param"),
    [
        ("temperature", "hot", "temperature"),
        ("n", "two", "n"),
        ("max_tokens", 0, "max_tokens"),
        ("stop", 5, "stop"),
        ("stream", "maybe", "stream"),
        ("top_p", 1.5, "top_p"),
        ("messages", [{"role": "user", "content": [{"type": "image_url"}]}],
         "messages.0.content.0.image_url"),
        ("messages", [{"role": "tool", "content": "x"}], "messages.0.tool_call_id"),
    ],
)  # fmt: skip
def test_wrong_types_are_400_naming_the_param(
    gateway: Gateway, field: str, value: object, param: str
) -> None:
    body = {"model": MODEL, "messages": USER, field: value}
    response = httpx.post(f"{gateway.url}/v1/chat/completions", json=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert set(error) == {"message", "type", "param", "code"}


def test_invalid_json_is_400(gateway: Gateway) -> None:
    response = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        content=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"


def test_streaming_format_with_include_usage(gateway: Gateway) -> None:
    body = {
        "model": MODEL,
        "messages": USER,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    response = httpx.post(f"{gateway.url}/v1/chat/completions", json=body)
    assert response.headers["content-type"].startswith("text/event-stream")
    events = sse_events(response.text)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert len({c["id"] for c in chunks}) == 1
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == "echo: hello there"
    finish = [c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert len(finish) == 1 and finish[0]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}


def test_streaming_with_openai_client_n2(gateway: Gateway) -> None:
    stream = gateway.client().chat.completions.create(model=MODEL, messages=USER, n=2, stream=True)
    texts = {0: "", 1: ""}
    for chunk in stream:
        for choice in chunk.choices:
            texts[choice.index] += choice.delta.content or ""
        assert chunk.usage is None
    assert texts == {0: "echo: hello there", 1: "echo: hello there"}


def test_content_parts_of_each_kind(gateway: Gateway) -> None:
    png, wav = media_bytes.png(), media_bytes.wav()
    url = media_bytes.data_url
    content = [
        {"type": "text", "text": "look"},
        {"type": "image_url", "image_url": {"url": url(png, "image/png"), "detail": "high"}},
        {"type": "input_audio", "input_audio": {"data": base64.b64encode(wav).decode(),
                                                "format": "wav"}},
        {"type": "audio_url", "audio_url": {"url": url(wav, "audio/wav")}},
        {"type": "video_url", "video_url": {"url": url(media_bytes.mp4(), "video/mp4")}},
        {"type": "thermal_url", "thermal_url": {"url": url(png, "image/png")}},
        {"type": "depth_url", "depth_url": {"url": url(png, "image/png")}},
        {"type": "imu_url", "imu_url": {"url": url(media_bytes.npy(), "application/x-npy")}},
        {"type": "text", "text": "and listen"},
    ]  # fmt: skip
    reply = gateway.client().chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": content}]
    )
    assert reply.choices[0].message.content == "echo: look and listen"
    turn = gateway.worker.jobs[-1].turns[-1].user
    assert turn.text == "look\nand listen"
    assert [m.modality for m in turn.media] == [
        "image", "audio", "audio", "video", "thermal", "depth", "imu",
    ]  # fmt: skip
    assert turn.media[0].data == png
    assert turn.media[0].sha256 == hashlib.sha256(png).hexdigest()


def test_conversation_becomes_turns(gateway: Gateway) -> None:
    png = media_bytes.data_url(media_bytes.png(), "image/png")
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "developer", "content": [{"type": "text", "text": "no lists"}]},
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": png}}]},
        {"role": "user", "content": "what is it?"},
        {"role": "assistant", "content": "a pixel"},
        {"role": "user", "content": "sure?"},
    ]
    gateway.client().chat.completions.create(model=MODEL, messages=messages)  # type: ignore[arg-type]
    job = gateway.worker.jobs[-1]
    assert job.system == "be brief\nno lists"
    assert [(t.user.text, t.assistant, len(t.user.media)) for t in job.turns] == [
        ("what is it?", "a pixel", 1),
        ("sure?", None, 0),
    ]


@pytest.mark.parametrize(
    ("messages", "param"),
    [
        ([{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], "messages"),
        ([{"role": "assistant", "content": "a"}, {"role": "user", "content": "q"}], "messages.0"),
    ],
)
def test_conversation_shape_errors(gateway: Gateway, messages: list[dict], param: str) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        gateway.client().chat.completions.create(model=MODEL, messages=messages)  # type: ignore[arg-type]
    assert info.value.body["param"] == param  # type: ignore[index]


def test_too_many_media_items(gateway_factory: GatewayFactory) -> None:
    png = media_bytes.data_url(media_bytes.png(), "image/png")
    part = {"type": "image_url", "image_url": {"url": png}}
    with gateway_factory(max_media_items=1) as gw, pytest.raises(openai.BadRequestError) as info:
        gw.client().chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": [part, part]}]
        )
    assert info.value.body["param"] == "messages.0.content.1"  # type: ignore[index]


def test_unknown_model_and_route_are_404(gateway: Gateway) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        gateway.client().chat.completions.create(model="gpt-9", messages=USER)
    assert info.value.body["code"] == "model_not_found"  # type: ignore[index]
    response = httpx.get(f"{gateway.url}/v1/nothing-here")
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "not_found_error"


def raising(exc: Exception):
    async def handler(job: ChatJob) -> AsyncIterator[ChatEvent]:
        raise exc
        yield  # pragma: no cover

    return handler


@pytest.mark.parametrize(
    ("exc", "status", "code"),
    [
        (ContextLengthExceeded("too long", param="messages"), 400, "context_length_exceeded"),
        (MediaInvalid("bad jpeg", reason="corrupt", param="messages.0"), 400, "media_corrupt"),
        (ServerBusy(retry_after=3), 429, "server_busy"),
        (Unavailable("no worker"), 503, "unavailable"),
        (RuntimeError("secret internals"), 500, "worker_failed"),
    ],
)
def test_worker_errors_before_streaming_map_to_status(
    gateway_factory: GatewayFactory, exc: Exception, status: int, code: str
) -> None:
    with gateway_factory(ScriptedWorker(raising(exc))) as gw:
        for stream in (False, True):
            response = httpx.post(
                f"{gw.url}/v1/chat/completions",
                json={"model": MODEL, "messages": USER, "stream": stream},
            )
            assert response.status_code == status
            error = response.json()["error"]
            assert error["code"] == code
            assert "secret" not in error["message"]
            if status == 429:
                assert response.headers["Retry-After"] == "3"


async def fail_mid_stream(job: ChatJob) -> AsyncIterator[ChatEvent]:
    yield ChatDelta(index=0, text="partial")
    yield WorkerErrorEvent(kind="WorkerFailed", message="engine died", code="worker_failed")


async def raise_mid_stream(job: ChatJob) -> AsyncIterator[ChatEvent]:
    yield ChatDelta(index=0, text="partial")
    raise RuntimeError("boom")


@pytest.mark.parametrize("handler", [fail_mid_stream, raise_mid_stream])
def test_mid_stream_error_is_one_error_event_then_done(
    gateway_factory: GatewayFactory, handler: object
) -> None:
    with gateway_factory(ScriptedWorker(handler)) as gw:  # type: ignore[arg-type]
        response = httpx.post(
            f"{gw.url}/v1/chat/completions",
            json={"model": MODEL, "messages": USER, "stream": True},
        )
        assert response.status_code == 200
        events = sse_events(response.text)
        assert events[-1] == "[DONE]"
        errors = [json.loads(e) for e in events[:-1] if "error" in json.loads(e)]
        assert len(errors) == 1
        assert set(errors[0]["error"]) == {"message", "type", "param", "code"}
        assert errors[0]["error"]["code"] == "worker_failed"
        assert gw.metric("pandagpt_requests_running") == 0


async def forever(job: ChatJob) -> AsyncIterator[ChatEvent]:
    while True:
        yield ChatDelta(index=0, text="tick ")
        await asyncio.sleep(0.05)


def test_client_disconnect_closes_the_worker_stream(gateway_factory: GatewayFactory) -> None:
    worker = ScriptedWorker(forever)
    with gateway_factory(worker) as gw:
        body = {"model": MODEL, "messages": USER, "stream": True}
        with (
            httpx.Client() as client,
            client.stream("POST", f"{gw.url}/v1/chat/completions", json=body) as response,
        ):
            for line in response.iter_lines():
                if "tick" in line:
                    break
        assert worker.aborted.wait(5), "worker stream was not closed after the client left"
        deadline = time.monotonic() + 5
        while gw.metric("pandagpt_requests_running") and time.monotonic() < deadline:
            time.sleep(0.02)
        assert gw.metric("pandagpt_requests_running") == 0


async def slow(job: ChatJob) -> AsyncIterator[ChatEvent]:
    await asyncio.sleep(30)
    yield ChatUsage(prompt_tokens=0, completion_tokens=0)


def test_request_timeout_is_504(gateway_factory: GatewayFactory) -> None:
    worker = ScriptedWorker(slow)
    with gateway_factory(worker, request_timeout_s=0.3) as gw:
        response = httpx.post(f"{gw.url}/v1/chat/completions", json={"messages": USER})
        assert response.status_code == 504
        assert response.json()["error"]["type"] == "timeout_error"
        assert worker.aborted.wait(5)


def test_client_leaving_a_non_streaming_request_aborts_it(gateway_factory: GatewayFactory) -> None:
    worker = ScriptedWorker(forever)
    with gateway_factory(worker) as gw:
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(f"{gw.url}/v1/chat/completions", json={"messages": USER}, timeout=0.5)
        assert worker.aborted.wait(5), "generation kept running after the client left"
