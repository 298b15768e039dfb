"""Two models behind one gateway, end to end: two worker processes serve the demo weights
under two different model names (`PANDAGPT_SERVED_MODEL_NAME`), with a throwaway Redis,
and the official `openai` client talks to the gateway.

Tests run in file order: the last one kills a worker.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from harness.deployments import Split, WorkerSpec, split_deployment
from harness.probes import metric, readiness
from tests.utils.media import data_url, image_part, user

pytestmark = pytest.mark.slow

FIRST, SECOND = "pandagpt-demo-first", "pandagpt-demo-second"
MODELS = (FIRST, SECOND)
WORKER_TOKEN = "models-e2e-worker-token-0123456789"


@pytest.fixture(scope="module")
def deployment(demo_model_dir: Path, e2e_logs: Path) -> Iterator[Split]:
    """`workers` and `procs` are keyed by the model each worker serves."""
    token = {"PANDAGPT_WORKER_TOKEN": WORKER_TOKEN}
    with split_deployment(
        demo_model_dir,
        e2e_logs,
        workers=[WorkerSpec(model, {"PANDAGPT_SERVED_MODEL_NAME": model}) for model in MODELS],
        cache_prefix="pandagpt-e2e-models:",
        worker_env={
            "PANDAGPT_ENFORCE_EAGER": "true",  # skip vLLM's compile warm-up
            "PANDAGPT_CACHE_SOCKET_TIMEOUT_S": "2",
            **token,
        },
        gateway_env=token,
        prefix="models-",
    ) as split:
        yield split


@pytest.fixture(scope="module")
def client(deployment: Split) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{deployment.gateway}/v1", api_key="unused", max_retries=0)


def chats_on(deployment: Split) -> dict[str, float]:
    """Chat jobs each worker has answered, from its own metrics."""
    return {
        model: metric(url, "pandagpt_http_requests_total", route="/internal/chat", status="200")
        for model, url in deployment.workers.items()
    }


def ask(client: openai.OpenAI, model: str, *parts: dict[str, Any]) -> str:
    reply = client.chat.completions.create(
        model=model, messages=[user("What is this?", *parts)], max_tokens=4
    )
    return reply.model


def test_models_are_the_union(client: openai.OpenAI) -> None:
    assert [m.id for m in client.models.list().data] == [FIRST, SECOND]


def test_each_model_lands_on_its_worker(deployment: Split, client: openai.OpenAI) -> None:
    before = chats_on(deployment)
    assert ask(client, SECOND, image_part(data_url("bird_image.jpg"))) == SECOND
    assert ask(client, SECOND) == SECOND
    assert ask(client, FIRST) == FIRST
    after = chats_on(deployment)
    assert (after[FIRST] - before[FIRST], after[SECOND] - before[SECOND]) == (1, 2)
    embedded = client.embeddings.create(model=SECOND, input="a bird singing")
    assert embedded.model == SECOND
    url = deployment.workers[SECOND]
    assert metric(url, "pandagpt_http_requests_total", route="/internal/embed", status="200") == 1


def test_unknown_model_is_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        ask(client, "pandagpt-13b")
    body = info.value.body
    assert isinstance(body, dict)
    assert (body["code"], body["param"], body["type"]) == (
        "model_not_found",
        "model",
        "not_found_error",
    )


def test_killed_worker_makes_its_model_503(deployment: Split, client: openai.OpenAI) -> None:
    deployment.procs[SECOND].kill()
    with pytest.raises(openai.InternalServerError) as info:
        ask(client, SECOND)  # the pool finds it unreachable, and no other worker serves it
    assert info.value.status_code == 503
    assert ask(client, FIRST) == FIRST
    assert [m.id for m in client.models.list().data] == [FIRST, SECOND]  # still known
    assert readiness(deployment.gateway)["status"] == "ready"
    gateway = deployment.gateway
    assert metric(gateway, "pandagpt_model_workers_ready", model=SECOND) == 0
    assert metric(gateway, "pandagpt_model_workers_ready", model=FIRST) == 1
