"""Split deployment end to end: one gateway, two worker processes, the machine's Redis.

Each run uses its own cache key prefix, so runs never see each other's entries.
The gateway's media allowlist admits loopback, where this module's media server
listens (`pandagpt serve` in test_serve.py refuses the same kind of URL).
Tests run in file order: the last one stops a worker.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest

from harness.deployments import split_deployment
from harness.local_servers import media_server
from harness.probes import metric, readiness
from harness.processes import Process
from service.contract import ChatJob, ChatTurn, MediaItem, SamplingSettings, UserTurn
from service.gateway import HTTPWorkerClient
from tests.e2e import structured
from tests.utils.media import MEDIA_DIR, data_url, image_part, media_bytes, user

pytestmark = pytest.mark.slow

REDIS_URL = "redis://127.0.0.1:6379/0"


WORKER_TOKEN = "split-e2e-worker-token-0123456789"


@dataclass
class Split:
    gateway: str
    workers: dict[str, str]  # name -> base URL
    procs: dict[str, Process]
    media: str
    prefix: str


@pytest.fixture(scope="module")
def split(demo_model_dir: Path, e2e_logs: Path) -> Iterator[Split]:
    prefix = f"pandagpt-e2e-{uuid.uuid4().hex[:12]}:"
    token = {"PANDAGPT_WORKER_TOKEN": WORKER_TOKEN}
    with (
        media_server(MEDIA_DIR) as media,
        split_deployment(
            demo_model_dir,
            e2e_logs,
            redis_url=REDIS_URL,
            cache_prefix=prefix,
            worker_env={
                "PANDAGPT_ENFORCE_EAGER": "true",  # skip vLLM's compile warm-up (as in test_serve)
                # a loaded CI machine must not turn hits into misses
                "PANDAGPT_CACHE_SOCKET_TIMEOUT_S": "2",
                **token,
            },
            gateway_env={"PANDAGPT_MEDIA_ALLOW_NETWORKS": "127.0.0.1/32", **token},
        ) as deployment,
    ):
        yield Split(deployment.gateway, deployment.workers, deployment.procs, media, prefix)


@pytest.fixture(scope="module")
def client(split: Split) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{split.gateway}/v1", api_key="unused", max_retries=0)


@pytest.fixture(scope="module")
def model(client: openai.OpenAI) -> str:
    return client.models.list().data[0].id


def image_hits(split: Split) -> dict[str, float]:
    return {
        name: metric(url, "pandagpt_cache_hits_total", modality="image")
        for name, url in split.workers.items()
    }


def image_misses(split: Split) -> dict[str, float]:
    return {
        name: metric(url, "pandagpt_cache_misses_total", modality="image")
        for name, url in split.workers.items()
    }


def chat_image(client: openai.OpenAI, model: str, url: str) -> str:
    reply = client.chat.completions.create(
        model=model, messages=[user("What is this?", image_part(url))], max_tokens=4
    )
    return reply.choices[0].message.content or ""


async def _direct_chat(worker_url: str, image: bytes) -> None:
    """One job straight to one worker's internal API (bypassing the pool's routing)."""
    item = MediaItem(modality="image", data=image, sha256=hashlib.sha256(image).hexdigest())
    job = ChatJob(
        request_id=f"direct-{uuid.uuid4().hex[:8]}",
        model="ignored",
        turns=[ChatTurn(user=UserTurn(text="What is this?", media=[item]))],
        sampling=SamplingSettings(max_tokens=2),
    )
    client = HTTPWorkerClient(worker_url, token=WORKER_TOKEN)
    try:
        job.model = (await client.models())[0].id
        async for _ in client.chat(job):
            pass
    finally:
        await client.aclose()


def test_gateway_serves_through_the_workers(client: openai.OpenAI, model: str) -> None:
    chat_image(client, model, data_url("bird_image.jpg"))


def test_repeated_image_is_a_cache_hit_on_either_worker(
    split: Split, client: openai.OpenAI, model: str
) -> None:
    before_hits, before_misses = image_hits(split), image_misses(split)
    chat_image(client, model, data_url("car_image.jpg"))  # a miss on one worker, stored in Redis
    chat_image(client, model, data_url("car_image.jpg"))  # a hit, wherever it lands
    after_hits, after_misses = image_hits(split), image_misses(split)
    assert sum(after_misses.values()) - sum(before_misses.values()) == 1
    assert sum(after_hits.values()) - sum(before_hits.values()) == 1
    # Each worker, asked directly, finds the feature the other may have stored.
    for url in split.workers.values():
        asyncio.run(_direct_chat(url, media_bytes("car_image.jpg")))
    final = image_hits(split)
    assert all(final[name] > after_hits[name] for name in split.workers), final


def test_workers_refuse_internal_calls_without_the_token(split: Split) -> None:
    for url in split.workers.values():
        for headers in ({}, {"Authorization": "Bearer not-the-token"}):
            response = httpx.get(f"{url}/internal/models", headers=headers, timeout=10)
            assert response.status_code == 401, response.text
        assert httpx.get(f"{url}/health/ready", timeout=10).status_code == 200


def test_allowlisted_media_server_is_fetched(
    split: Split, client: openai.OpenAI, model: str
) -> None:
    chat_image(client, model, f"{split.media}/dog_image.jpg")
    with pytest.raises(openai.BadRequestError) as info:
        chat_image(client, model, "http://10.255.255.1/x.jpg")  # private, not allowlisted
    assert isinstance(info.value.body, dict) and info.value.body["code"] == "media_blocked_address"


def test_structured_outputs_and_tool_calls_through_the_gateway(
    client: openai.OpenAI, model: str
) -> None:
    """The constraint crosses the job frame; a worker's compile error is the gateway's 400."""
    structured.check_json_schema(client, model)
    structured.check_named_tool_call_streamed(client, model)
    structured.check_tool_result_follow_up(client, model)
    structured.check_refusals(client, model)


def test_stopped_worker_is_routed_around(split: Split, client: openai.OpenAI, model: str) -> None:
    stopped = split.procs["worker-a"]
    assert stopped.stop(timeout=60) == 0, stopped.log_tail()
    for _ in range(4):  # the first may find worker-a down: the pool retries elsewhere
        chat_image(client, model, data_url("bird_image.jpg"))
    survivor = split.workers["worker-b"]
    assert readiness(survivor)["ready"] is True
    assert readiness(split.gateway)["status"] == "ready"
