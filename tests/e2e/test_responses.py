"""`/v1/responses` end to end: one worker on demo weights, two gateways on the machine's
Redis (split mode), all real `pandagpt` processes, driven by real clients: the
official `openai` client, the OpenAI Agents SDK and LangChain's `ChatOpenAI`.

Each run uses its own key prefixes (embedding cache, stored responses), so runs
never see each other's entries. Demo weights write gibberish: the tests assert
structure and behaviour, never text. Tests run in file order: the last two kill,
then restart gateway A.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import openai
import pytest
from pydantic import BaseModel
from redis import Redis

from harness.deployments import Split, WorkerSpec, split_deployment
from harness.probes import metric
from harness.processes import Process
from tests.utils.media import data_url

pytestmark = pytest.mark.slow

REDIS_URL = "redis://127.0.0.1:6379/0"
WORKER_TOKEN = "responses-e2e-worker-token-0123456789"
WEATHER = {
    "type": "object",
    "properties": {"city": {"type": "string", "maxLength": 8}},  # demo weights: bounded
    "required": ["city"],
    "additionalProperties": False,
}


class Forecast(BaseModel):
    sky: Literal["sunny", "rainy"]


@dataclass
class Deployment:
    split: Split  # one worker, two gateways: a response stored by one is read by the other
    cache_prefix: str

    @property
    def worker(self) -> str:
        return self.split.workers["worker"]

    @property
    def gateways(self) -> dict[str, str]:
        return self.split.gateways

    @property
    def procs(self) -> dict[str, Process]:
        return self.split.procs

    def client(self, gateway: str) -> openai.OpenAI:
        url = self.gateways[gateway]
        return openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=120)

    def start_gateway(self, name: str) -> None:
        self.split.start_gateway(name)


@pytest.fixture(scope="module")
def deployment(demo_model_dir: Path, e2e_logs: Path) -> Iterator[Deployment]:
    run = uuid.uuid4().hex[:12]
    cache_prefix = f"pandagpt-e2e-{run}:"
    token = {"PANDAGPT_WORKER_TOKEN": WORKER_TOKEN}
    try:
        with split_deployment(
            demo_model_dir,
            e2e_logs,
            workers=[WorkerSpec("worker")],
            gateways=("gateway-a", "gateway-b"),
            redis_url=REDIS_URL,
            cache_prefix=cache_prefix,
            worker_env={
                "PANDAGPT_ENFORCE_EAGER": "true",  # skip vLLM's compile warm-up (as in test_serve)
                # a loaded CI machine must not turn hits into misses
                "PANDAGPT_CACHE_SOCKET_TIMEOUT_S": "2",
                **token,
            },
            gateway_env={
                "PANDAGPT_REDIS_URL": REDIS_URL,
                "PANDAGPT_RESPONSES_PREFIX": f"pandagpt-e2e-resp-{run}:",
                "PANDAGPT_RATELIMIT_PREFIX": f"pandagpt-e2e-rl-{run}:",
                "PANDAGPT_RESPONSES_HEARTBEAT_S": "0.5",
                **token,
            },
            prefix="responses-",
        ) as split:
            yield Deployment(split, cache_prefix)
    finally:
        _drop_keys(f"pandagpt-e2e-*{run}:*")


def _drop_keys(pattern: str) -> None:
    client = Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(pattern))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture(scope="module")
def model(deployment: Deployment) -> str:
    return deployment.client("gateway-a").models.list().data[0].id


def image_question(text: str, image: str) -> list[dict[str, Any]]:
    content = [
        {"type": "input_text", "text": text},
        {"type": "input_image", "image_url": image, "detail": "auto"},
    ]
    return [{"role": "user", "content": content}]


def test_create_retrieve_list_delete(deployment: Deployment, model: str) -> None:
    client = deployment.client("gateway-a")
    response = client.responses.create(
        model=model, input="Say hello.", instructions="Be brief.", max_output_tokens=8
    )
    assert response.status in ("completed", "incomplete"), response
    assert response.output and response.output[0].type == "message"
    assert response.usage is not None and response.usage.output_tokens >= 1
    assert response.usage.input_tokens > 0
    if response.status == "incomplete":
        assert response.incomplete_details is not None
        assert response.incomplete_details.reason == "max_output_tokens"
    again = client.responses.retrieve(response.id)
    assert again.output_text == response.output_text
    items = client.responses.input_items.list(response.id)
    assert [item.type for item in items.data] == ["message"]
    client.responses.delete(response.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(response.id)


def test_stream_helper_assembles_the_response(deployment: Deployment, model: str) -> None:
    """A JSON schema makes the demo model stop by itself (`response.completed`); the
    helper parses it. A reply cut by max_output_tokens ends `response.incomplete`."""
    client = deployment.client("gateway-b")
    schema = {
        "type": "object",
        "properties": {"answer": {"enum": ["yes", "no"]}},
        "required": ["answer"],
        "additionalProperties": False,
    }
    text = {"format": {"type": "json_schema", "name": "yes_no", "schema": schema}}
    with client.responses.stream(
        model=model, input="Is it sunny?", text=text, max_output_tokens=64
    ) as stream:  # type: ignore[arg-type]
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed", kinds
    assert "response.output_text.delta" in kinds and "response.output_item.done" in kinds
    assert json.loads(final.output_text)["answer"] in ("yes", "no")
    assert client.responses.retrieve(final.id).output_text == final.output_text
    cut = client.responses.create(
        model=model,
        input="Go on.",
        stream=True,
        max_output_tokens=2,
        extra_body={"ignore_eos": True},
    )
    events = list(cut)
    assert events[-1].type == "response.incomplete"
    assert [e.sequence_number for e in events] == list(range(len(events)))


def test_image_conversation_continues_on_another_gateway(
    deployment: Deployment, model: str
) -> None:
    """Turn 1 with an image on gateway A; turn 2 by previous_response_id on gateway B sends
    no image: the worker takes the feature from the cache (a hit, no new encode)."""
    first = deployment.client("gateway-a").responses.create(
        model=model,
        input=image_question("What is in this picture?", data_url("dog_image.jpg")),
        max_output_tokens=6,
    )
    hits = metric(deployment.worker, "pandagpt_cache_hits_total", modality="image")
    misses = metric(deployment.worker, "pandagpt_cache_misses_total", modality="image")
    second = deployment.client("gateway-b").responses.create(
        model=model, input="And what colour is it?", previous_response_id=first.id,
        max_output_tokens=6,
    )  # fmt: skip
    assert second.status in ("completed", "incomplete") and second.previous_response_id == first.id
    # the whole conversation went to the model: a longer prompt than turn 1's
    assert second.usage is not None and first.usage is not None
    assert second.usage.input_tokens > first.usage.input_tokens
    assert metric(deployment.worker, "pandagpt_cache_hits_total", modality="image") == hits + 1
    assert metric(deployment.worker, "pandagpt_cache_misses_total", modality="image") == misses


def test_evicted_feature_is_a_400_naming_previous_response_id(
    deployment: Deployment, model: str
) -> None:
    client = deployment.client("gateway-a")
    first = client.responses.create(
        model=model,
        input=image_question("What is this?", data_url("car_image.jpg")),
        max_output_tokens=4,
    )
    _drop_keys(f"{deployment.cache_prefix}*")  # the worker's embedding cache, emptied
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.create(model=model, input="More?", previous_response_id=first.id)
    body = info.value.body
    assert isinstance(body, dict) and body["param"] == "previous_response_id"
    assert body["code"] == "media_evicted"


def test_named_tool_choice_is_one_call_on_demo_weights(deployment: Deployment, model: str) -> None:
    tools = [{"type": "function", "name": "get_weather", "parameters": WEATHER}]
    response = deployment.client("gateway-a").responses.create(
        model=model,
        input="Weather in Paris?",
        tools=tools,  # type: ignore[arg-type]
        tool_choice={"type": "function", "name": "get_weather"},
        max_output_tokens=160,
    )
    calls = [item for item in response.output if item.type == "function_call"]
    assert len(calls) == 1, response.output
    assert calls[0].name == "get_weather" and "city" in json.loads(calls[0].arguments)


def test_background_polls_to_completion_and_cancels(deployment: Deployment, model: str) -> None:
    client = deployment.client("gateway-a")
    queued = client.responses.create(
        model=model, input="Tell a story.", background=True, max_output_tokens=8
    )
    assert queued.status in ("queued", "in_progress") and queued.background
    done = queued
    for _ in range(600):
        done = deployment.client("gateway-b").responses.retrieve(queued.id)  # any gateway
        if done.status not in ("queued", "in_progress"):
            break
        asyncio.run(asyncio.sleep(0.1))
    assert done.status in ("completed", "incomplete"), done
    long = client.responses.create(
        model=model,
        input="Tell a long story.",
        background=True,
        max_output_tokens=900,
        extra_body={"ignore_eos": True},
    )
    cancelled = deployment.client("gateway-b").responses.cancel(long.id)  # from the other one
    assert cancelled.status == "cancelled", cancelled
    assert client.responses.retrieve(long.id).status == "cancelled"


def test_agents_sdk_runs_an_agent_with_a_function_tool(deployment: Deployment, model: str) -> None:
    agents = pytest.importorskip("agents")
    agents.set_tracing_disabled(True)  # no traces sent anywhere
    calls: list[str] = []

    @agents.function_tool
    def get_weather(unit: Literal["c", "f"]) -> str:
        """The weather here, in Celsius or Fahrenheit (an enum: demo weights stop early)."""
        calls.append(unit)
        return "sunny, 18C"

    client = openai.AsyncOpenAI(
        base_url=f"{deployment.gateways['gateway-b']}/v1", api_key="unused", max_retries=0
    )
    agent = agents.Agent(
        name="weather",
        instructions="Answer with the weather.",
        tools=[get_weather],
        model=agents.OpenAIResponsesModel(model=model, openai_client=client),
        # The first turn must call the tool (demo weights would not choose to); after it
        # the SDK resets tool_choice, and the model answers in the output type's schema
        # (text.format), which makes demo weights stop by themselves.
        model_settings=agents.ModelSettings(tool_choice="get_weather", max_tokens=96),
        output_type=Forecast,
    )

    async def run() -> Any:
        try:
            return await agents.Runner.run(agent, "What's the weather in Paris?", max_turns=4)
        finally:
            await client.close()

    result = asyncio.run(run())
    assert calls == ["c"] or calls == ["f"], calls
    assert isinstance(result.final_output, Forecast)
    kinds = [item.type for item in result.new_items]
    assert kinds[:2] == ["tool_call_item", "tool_call_output_item"], kinds


def test_langchain_chat_openai_with_the_responses_api(deployment: Deployment, model: str) -> None:
    langchain_openai = pytest.importorskip("langchain_openai")
    chat = langchain_openai.ChatOpenAI(
        model=model,
        base_url=f"{deployment.gateways['gateway-a']}/v1",
        api_key="unused",
        use_responses_api=True,
        max_tokens=8,
        max_retries=0,
    )
    message = chat.invoke("Hello!")
    assert message.response_metadata.get("id", "").startswith("resp_"), message
    assert isinstance(message.text, str) and message.usage_metadata is not None


def test_a_killed_gateway_leaves_its_background_response_failed(
    deployment: Deployment, model: str
) -> None:
    """SIGKILL, no clean-up: the record's heartbeat stops, and readers see `failed`."""
    other = deployment.client("gateway-b")
    long = deployment.client("gateway-a").responses.create(
        model=model,
        input="Tell a long story.",
        background=True,
        max_output_tokens=900,
        extra_body={"ignore_eos": True},
    )
    status = long.status
    for _ in range(300):
        status = other.responses.retrieve(long.id).status
        if status != "queued":
            break
        asyncio.run(asyncio.sleep(0.1))
    assert status == "in_progress"
    deployment.procs["gateway-a"].kill()
    seen = other.responses.retrieve(long.id)
    for _ in range(300):  # 5 beats of 0.5 s, and a margin
        seen = other.responses.retrieve(long.id)
        if seen.status != "in_progress":
            break
        asyncio.run(asyncio.sleep(0.1))
    assert seen.status == "failed" and seen.error is not None, seen
    deployment.start_gateway("gateway-a")


def test_stored_response_survives_a_gateway_restart(deployment: Deployment, model: str) -> None:
    created = deployment.client("gateway-a").responses.create(
        model=model, input="Remember me.", max_output_tokens=4
    )
    assert deployment.procs["gateway-a"].stop(timeout=30) == 0
    deployment.start_gateway("gateway-a")
    kept = deployment.client("gateway-a").responses.retrieve(created.id)
    assert kept.id == created.id and kept.output_text == created.output_text
    follow = deployment.client("gateway-a").responses.create(
        model=model, input="Again.", previous_response_id=created.id, max_output_tokens=4
    )
    assert follow.status in ("completed", "incomplete")
