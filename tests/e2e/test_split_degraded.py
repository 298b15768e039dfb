"""A degraded split deployment: a Redis outage, and a worker with no room left.

- Redis outage: requests keep succeeding uncached, the cache-error counter
  rises, and hits resume once Redis is back. This module starts its OWN
  throwaway `redis-server` on a free port (no persistence) and stops that one:
  the machine's Redis on 6379 is never touched.
- Saturation: the worker runs one job at a time with no wait queue, so a second
  concurrent request is refused with 429 and Retry-After.
One worker and one gateway are enough for both.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest

from harness.deployments import WorkerSpec, split_deployment
from harness.probes import metric, readiness, wait_until_idle
from harness.processes import RedisServer
from tests.utils.media import data_url, image_part, user

pytestmark = pytest.mark.slow


@dataclass
class Deployment:
    gateway: str
    worker: str
    redis: RedisServer


@pytest.fixture(scope="module")
def deployment(demo_model_dir: Path, e2e_logs: Path) -> Iterator[Deployment]:
    with split_deployment(
        demo_model_dir,
        e2e_logs,
        workers=[WorkerSpec("worker")],
        cache_prefix="pandagpt-e2e-outage:",
        worker_env={
            "PANDAGPT_ENFORCE_EAGER": "true",  # skip vLLM's compile warm-up (as in test_serve)
            "PANDAGPT_CACHE_SOCKET_TIMEOUT_S": "2",  # no timeouts on a loaded machine
            "PANDAGPT_MAX_NUM_SEQS": "1",
            "PANDAGPT_MAX_QUEUE_SIZE": "0",
            "PANDAGPT_RETRY_AFTER_S": "3",
        },
        prefix="redis-outage-",
    ) as split:
        assert split.redis is not None
        yield Deployment(split.gateway, split.workers["worker"], split.redis)


@pytest.fixture(scope="module")
def client(deployment: Deployment) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{deployment.gateway}/v1", api_key="unused", max_retries=0)


def ask_image(client: openai.OpenAI, name: str) -> None:
    model = client.models.list().data[0].id
    reply = client.chat.completions.create(
        model=model, messages=[user("What is this?", image_part(data_url(name)))], max_tokens=4
    )
    assert reply.choices[0].finish_reason in {"stop", "length"}


def hits(worker: str) -> float:
    return metric(worker, "pandagpt_cache_hits_total", modality="image")


def errors(worker: str) -> float:
    return metric(worker, "pandagpt_cache_errors_total")


def test_redis_outage_degrades_to_misses_and_recovers(
    deployment: Deployment, client: openai.OpenAI
) -> None:
    worker = deployment.worker
    ask_image(client, "bird_image.jpg")
    ask_image(client, "bird_image.jpg")
    assert hits(worker) == 1  # Redis up: the repeat is a hit

    deployment.redis.stop()
    errors_before = errors(worker)
    for _ in range(2):
        ask_image(client, "bird_image.jpg")  # still answered, just uncached
    assert errors(worker) > errors_before
    assert hits(worker) == 1
    assert readiness(worker)["cache_degraded"] is True

    deployment.redis.start()  # same port, empty
    # After a failure the worker leaves Redis alone for a while (its backoff); readiness
    # says degraded until it has used Redis again. Then two asks: the first stores the image
    # in the empty Redis (unless the request that cleared the flag did), the second hits.
    deadline = time.monotonic() + 60
    while readiness(worker)["cache_degraded"]:
        assert time.monotonic() < deadline, "the worker never used Redis again"
        ask_image(client, "bird_image.jpg")
        time.sleep(0.2)
    ask_image(client, "bird_image.jpg")
    ask_image(client, "bird_image.jpg")
    assert hits(worker) > 1, "cache hits did not resume after Redis came back"


def test_saturated_worker_answers_429_with_retry_after(
    deployment: Deployment, client: openai.OpenAI
) -> None:
    model = client.models.list().data[0].id
    # The only slot is held by four answers that each run to max_tokens, one sequence at a
    # time: seconds of engine work, so the second request meets the slot still taken.
    stream = client.chat.completions.create(
        model=model,
        messages=[user("Keep going.")],
        max_tokens=900,
        n=4,
        stream=True,
        extra_body={"ignore_eos": True},
    )
    try:
        next(iter(stream))  # the first event came from the worker: the only slot is taken
        response = httpx.post(
            f"{deployment.gateway}/v1/chat/completions",
            json={"model": model, "messages": [user("Hi")], "max_tokens": 2},
            timeout=30,
        )
    finally:
        stream.close()
    assert response.status_code == 429, response.text
    assert response.headers["Retry-After"] == "3"
    assert response.json()["error"]["type"] == "rate_limit_error"
    # Closing the client's stream closes the gateway's stream to the worker, which
    # aborts all four sequences: the slot is free again.
    assert wait_until_idle(deployment.worker) == 0
