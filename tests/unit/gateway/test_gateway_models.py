"""Several models behind one pool: workers (create_worker_app over scripted Workers, served
by uvicorn on 127.0.0.1) serve different model ids; the pool learns them, lists the union
and routes each job to a ready worker of its model."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack

import httpx
import openai
import pytest

from harness.local_servers import serve_in_thread
from service.api import create_app
from service.config import Settings
from service.contract import ChatDelta, ChatJob, ChatTurn, EmbedJob, UserTurn
from service.errors import NotFound, Unavailable
from service.gateway import HTTPWorkerClient, WorkerPool
from service.metrics import Metrics
from service.worker.http_app import create_worker_app
from tests.utils.fake_worker import ScriptedWorker

SMALL, LARGE, LARGE_LORA = "panda-7b", "panda-13b", "panda-13b-lora"


def job(model: str, rid: str = "r") -> ChatJob:
    return ChatJob(request_id=rid, model=model, turns=[ChatTurn(user=UserTurn(text="hi"))])


@pytest.fixture
def stack() -> Iterator[ExitStack]:
    with ExitStack() as s:
        yield s


def serve(stack: ExitStack, *workers: ScriptedWorker) -> list[str]:
    return [stack.enter_context(serve_in_thread(create_worker_app(w, Settings()))) for w in workers]


async def collect_text(pool: WorkerPool, model: str, rid: str = "r") -> str:
    return "".join([e.text async for e in pool.chat(job(model, rid)) if isinstance(e, ChatDelta)])


async def test_pool_lists_the_union_and_routes_by_model(stack: ExitStack) -> None:
    small_a, small_b = ScriptedWorker(models=[SMALL]), ScriptedWorker(models=[SMALL])
    large = ScriptedWorker(models=[LARGE, LARGE_LORA])
    metrics = Metrics()
    pool = WorkerPool(
        [HTTPWorkerClient(u) for u in serve(stack, small_a, large, small_b)],
        names=["small-a", "large", "small-b"],
        metrics=metrics,
    )
    # In worker order, each id once: the first is the default of a request naming none.
    assert [m.id for m in await pool.models()] == [SMALL, LARGE, LARGE_LORA]
    for i in range(4):
        assert await collect_text(pool, SMALL, str(i)) == "echo: hi"
    assert await collect_text(pool, LARGE_LORA) == "echo: hi"
    await pool.embed(EmbedJob(request_id="e", model=LARGE, inputs=["a"]))
    assert [j.model for j in large.jobs] == [LARGE_LORA]
    assert [j.model for j in large.embed_jobs] == [LARGE]
    assert len(small_a.jobs) + len(small_b.jobs) == 4 and small_a.jobs and small_b.jobs
    with pytest.raises(NotFound) as info:
        await collect_text(pool, "panda-70b")
    assert (info.value.param, info.value.code) == ("model", "model_not_found")

    await pool.poll_once()
    ready = metrics.registry.get_sample_value
    assert ready("pandagpt_model_workers_ready", {"model": SMALL}) == 2
    assert ready("pandagpt_model_workers_ready", {"model": LARGE_LORA}) == 1
    # Every worker of one model down: that model is unavailable, the other still serves.
    large.ready = False
    await pool.poll_once()
    with pytest.raises(Unavailable, match=LARGE):
        await collect_text(pool, LARGE)
    assert await collect_text(pool, SMALL) == "echo: hi"
    assert ready("pandagpt_model_workers_ready", {"model": LARGE}) == 0
    assert [m.id for m in await pool.models()] == [SMALL, LARGE, LARGE_LORA]  # still known
    large.ready = True
    await pool.poll_once()
    assert await collect_text(pool, LARGE) == "echo: hi"
    await pool.aclose()


def test_gateway_over_two_models(stack: ExitStack) -> None:
    """The public API: /v1/models is the union, a request without `model` takes the first,
    an unknown model is 404 `model_not_found`, a model with no ready worker is 503."""
    small, large = ScriptedWorker(models=[SMALL]), ScriptedWorker(models=[LARGE])
    settings = Settings(
        worker_urls=serve(stack, small, large), enable_playground=False, log_json=False
    )
    pool = WorkerPool.from_settings(settings)
    gateway = stack.enter_context(serve_in_thread(create_app(settings, pool)))
    client = openai.OpenAI(base_url=f"{gateway}/v1", api_key="x", max_retries=0)
    assert [m.id for m in client.models.list().data] == [SMALL, LARGE]
    messages = [{"role": "user", "content": "which"}]
    reply = client.chat.completions.create(model=LARGE, messages=messages)  # type: ignore[arg-type]
    assert reply.model == LARGE and [j.model for j in large.jobs] == [LARGE]
    untyped = httpx.post(f"{gateway}/v1/chat/completions", json={"messages": messages})
    assert untyped.status_code == 200 and untyped.json()["model"] == SMALL
    assert len(small.jobs) == 1

    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="panda-70b", messages=messages)  # type: ignore[arg-type]
    error = missing.value.body
    assert isinstance(error, dict)
    assert (error["code"], error["param"]) == ("model_not_found", "model")
    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model="panda-70b", input="a bird")

    large.ready = False
    assert httpx.get(f"{gateway}/health/ready").status_code == 200  # it polls every worker
    with pytest.raises(openai.InternalServerError) as down:
        client.chat.completions.create(model=LARGE, messages=messages)  # type: ignore[arg-type]
    assert down.value.status_code == 503
    assert client.chat.completions.create(model=SMALL, messages=messages).model == SMALL  # type: ignore[arg-type]
