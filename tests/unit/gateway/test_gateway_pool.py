"""HTTPWorkerClient and WorkerPool against real worker apps (create_worker_app over
scripted Workers, served by uvicorn on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import ExitStack

import httpx
import pytest

from harness.local_servers import serve_in_thread
from service.api import create_app
from service.config import Settings
from service.contract import (
    ChatDelta,
    ChatEvent,
    ChatJob,
    ChatTurn,
    EmbedJob,
    MediaItem,
    UserTurn,
    WorkerErrorEvent,
    WorkerReadiness,
)
from service.errors import MediaInvalid, ServerBusy, Unavailable
from service.gateway import HTTPWorkerClient, WorkerPool
from service.gateway.pool import SLOW_POLLS_TO_UNHEALTHY
from service.metrics import Metrics
from service.worker.http_app import create_worker_app
from tests.utils.fake_worker import MODEL, ScriptedWorker
from tests.utils.media_bytes import png


def job(text: str = "hi there", rid: str = "r1") -> ChatJob:
    return ChatJob(request_id=rid, model=MODEL, turns=[ChatTurn(user=UserTurn(text=text))])


def serve_workers(stack: ExitStack, *workers: ScriptedWorker) -> list[str]:
    return [stack.enter_context(serve_in_thread(create_worker_app(w, Settings()))) for w in workers]


@pytest.fixture
def stack() -> Iterator[ExitStack]:
    with ExitStack() as s:
        yield s


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


async def collect(events: AsyncIterator[ChatEvent]) -> list[ChatEvent]:
    return [e async for e in events]


async def until(predicate: Callable[[], bool], timeout_s: float = 30.0) -> None:
    """Yield to the loop (where the pool's background poll runs) until `predicate` holds."""
    async with asyncio.timeout(timeout_s):
        while not predicate():
            await asyncio.sleep(0.01)


async def test_http_client_round_trip(stack: ExitStack) -> None:
    worker = ScriptedWorker()
    (url,) = serve_workers(stack, worker)
    client = HTTPWorkerClient(url)
    events = await collect(client.chat(job()))
    text = "".join(e.text for e in events if isinstance(e, ChatDelta))
    assert text == "echo: hi there"
    assert events[-1].type == "usage"
    assert [m.id for m in await client.models()] == [MODEL]
    assert (await client.readiness()).ready
    image = MediaItem(modality="image", data=png(), sha256="0" * 64)
    result = await client.embed(EmbedJob(request_id="e", model=MODEL, inputs=["a", image]))
    assert result.embeddings[1] == [0.0, 1.0, 0.0, 0.0]
    assert worker.embed_jobs[-1].inputs[1] == image  # binary bytes survived JSON
    await client.aclose()


async def test_http_client_rebuilds_errors(stack: ExitStack) -> None:
    async def bad_media(j: ChatJob) -> AsyncIterator[ChatEvent]:
        raise MediaInvalid("cannot decode", reason="corrupt", param="messages.0")
        yield  # pragma: no cover

    async def busy(j: ChatJob) -> AsyncIterator[ChatEvent]:
        raise ServerBusy(retry_after=7)
        yield  # pragma: no cover

    async def dies(j: ChatJob) -> AsyncIterator[ChatEvent]:
        yield ChatDelta(index=0, text="a")
        raise RuntimeError("engine died")

    urls = serve_workers(stack, *(ScriptedWorker(h) for h in (bad_media, busy, dies)))
    clients = [HTTPWorkerClient(u) for u in urls]
    with pytest.raises(MediaInvalid) as info:
        await collect(clients[0].chat(job()))
    assert (info.value.reason, info.value.param) == ("corrupt", "messages.0")
    with pytest.raises(ServerBusy) as busy_info:
        await collect(clients[1].chat(job()))
    assert busy_info.value.retry_after == 7
    events = await collect(clients[2].chat(job()))
    assert isinstance(events[-1], WorkerErrorEvent) and events[-1].kind == "WorkerFailed"
    with pytest.raises(Unavailable):
        await collect(HTTPWorkerClient(closed_port_url()).chat(job()))
    for client in clients:
        await client.aclose()


async def test_pool_picks_the_least_loaded(stack: ExitStack) -> None:
    gate = asyncio.Event()

    async def held(j: ChatJob) -> AsyncIterator[ChatEvent]:
        yield ChatDelta(index=0, text="first")
        while not gate.is_set():
            await asyncio.sleep(0.01)
        yield ChatDelta(index=0, text=" done", finish_reason="stop")

    a, b = ScriptedWorker(held), ScriptedWorker(held)
    urls = serve_workers(stack, a, b)
    pool = WorkerPool([HTTPWorkerClient(u) for u in urls], names=["a", "b"])
    first = aiter(pool.chat(job(rid="1")))
    await anext(first)
    second = aiter(pool.chat(job(rid="2")))
    await anext(second)
    # One stream in flight on each: they went to different workers.
    assert (len(a.jobs), len(b.jobs)) == (1, 1)
    gate.set()
    assert [e async for e in first] and [e async for e in second]
    await pool.aclose()


async def test_pool_retries_before_streaming(stack: ExitStack) -> None:
    async def busy(j: ChatJob) -> AsyncIterator[ChatEvent]:
        raise ServerBusy()
        yield  # pragma: no cover

    busy_worker, good = ScriptedWorker(busy), ScriptedWorker()
    urls = serve_workers(stack, busy_worker, good)
    metrics = Metrics()
    dead = closed_port_url()
    pool = WorkerPool(
        [HTTPWorkerClient(u) for u in [dead, *urls]],
        names=["dead", "busy", "good"],
        metrics=metrics,
    )
    for i in range(4):
        events = await collect(pool.chat(job(rid=str(i))))
        assert "".join(e.text for e in events if isinstance(e, ChatDelta)) == "echo: hi there"
    assert len(good.jobs) == 4
    assert busy_worker.jobs  # it was tried and the job moved on
    # The unreachable worker was marked unhealthy on the spot, and reported so.
    assert metrics.registry.get_sample_value("pandagpt_worker_healthy", {"worker": "dead"}) == 0
    assert metrics.registry.get_sample_value("pandagpt_worker_healthy", {"worker": "good"}) == 1
    await pool.aclose()


async def test_pool_health_marking_and_recovery(stack: ExitStack) -> None:
    a, b = ScriptedWorker(ready=False), ScriptedWorker()
    urls = serve_workers(stack, a, b)
    metrics = Metrics()
    pool = WorkerPool(
        [HTTPWorkerClient(u) for u in urls], names=["a", "b"], poll_interval_s=0.05, metrics=metrics
    )

    def healthy(name: str) -> float | None:
        return metrics.registry.get_sample_value("pandagpt_worker_healthy", {"worker": name})

    await pool.start()
    await until(lambda: healthy("a") == 0)  # the background poll found `a` not ready
    for i in range(3):
        await collect(pool.chat(job(rid=str(i))))
    assert (len(a.jobs), len(b.jobs)) == (0, 3)
    readiness = await pool.readiness()
    assert readiness.ready and readiness.detail == "1/2 workers ready"
    b.ready = False
    await pool.poll_once()
    with pytest.raises(Unavailable):
        await collect(pool.chat(job()))
    assert not (await pool.readiness()).ready
    a.ready = True
    await until(lambda: healthy("a") == 1)  # the background poll notices
    await collect(pool.chat(job()))
    assert len(a.jobs) == 1
    await pool.aclose()


async def test_closing_the_pool_stream_aborts_the_remote_generation(stack: ExitStack) -> None:
    async def forever(j: ChatJob) -> AsyncIterator[ChatEvent]:
        while True:
            yield ChatDelta(index=0, text="tick")
            await asyncio.sleep(0.02)

    worker = ScriptedWorker(forever)
    (url,) = serve_workers(stack, worker)
    pool = WorkerPool([HTTPWorkerClient(url)])
    events = pool.chat(job())
    await anext(aiter(events))
    await events.aclose()  # type: ignore[attr-defined]
    assert await asyncio.to_thread(worker.aborted.wait, 5)
    await pool.aclose()


def test_gateway_over_a_pool_with_the_openai_client(stack: ExitStack) -> None:
    urls = serve_workers(stack, ScriptedWorker(), ScriptedWorker())
    settings = Settings(worker_urls=urls, enable_playground=False)
    metrics = Metrics()
    pool = WorkerPool.from_settings(settings, metrics=metrics)
    gateway = stack.enter_context(serve_in_thread(create_app(settings, pool, metrics=metrics)))
    from openai import OpenAI

    client = OpenAI(base_url=f"{gateway}/v1", api_key="x", max_retries=0)
    reply = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "split mode"}]
    )
    assert reply.choices[0].message.content == "echo: split mode"
    stream = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "streamed"}], stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == (
        "echo: streamed"
    )


WORKER_TOKEN = "worker-token-0123456789abcdef"


async def test_worker_token_guards_the_internal_api(stack: ExitStack) -> None:
    worker = ScriptedWorker()
    url = stack.enter_context(
        serve_in_thread(create_worker_app(worker, Settings(worker_token=WORKER_TOKEN)))
    )
    async with httpx.AsyncClient(base_url=url) as http:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": WORKER_TOKEN}):
            for path in ("/internal/models", "/internal/ready"):
                response = await http.get(path, headers=headers)
                assert response.status_code == 401, (path, headers)
                assert response.json()["kind"] == "Unauthorized"
                assert WORKER_TOKEN not in response.text
            response = await http.post("/internal/chat", json=job().model_dump(), headers=headers)
            assert response.status_code == 401
        # Probes and scraping stay open.
        assert (await http.get("/health/live")).status_code == 200
        assert (await http.get("/health/ready")).status_code == 200
        assert (await http.get("/metrics")).status_code == 200
    assert worker.jobs == []

    right = HTTPWorkerClient(url, token=WORKER_TOKEN)
    assert (await right.readiness()).ready
    events = await collect(right.chat(job()))
    assert "".join(e.text for e in events if isinstance(e, ChatDelta)) == "echo: hi there"
    await right.aclose()


async def test_a_gateway_with_the_wrong_worker_token_sees_no_ready_worker(
    stack: ExitStack,
) -> None:
    worker = ScriptedWorker()
    url = stack.enter_context(
        serve_in_thread(create_worker_app(worker, Settings(worker_token=WORKER_TOKEN)))
    )
    settings = Settings(worker_urls=[url], worker_token="some-other-token-value")
    pool = WorkerPool.from_settings(settings)
    await pool.poll_once()
    readiness = await pool.readiness()
    assert not readiness.ready
    with pytest.raises(Unavailable) as refused:
        await collect(pool.chat(job()))
    assert refused.value.status == 503 and "some-other-token-value" not in str(refused.value)
    wrong = HTTPWorkerClient(url, token="some-other-token-value")
    with pytest.raises(Unavailable, match="worker_token differs"):
        await wrong.readiness()
    await wrong.aclose()
    await pool.aclose()
    assert worker.jobs == []


async def test_a_slow_worker_stays_healthy_until_three_polls_time_out() -> None:
    class SlowToAnswer(ScriptedWorker):
        async def readiness(self) -> WorkerReadiness:
            await asyncio.sleep(3600)  # busy: the poll times out
            raise AssertionError("unreachable")

    metrics = Metrics()
    pool = WorkerPool([SlowToAnswer()], names=["busy"], poll_timeout_s=0.01, metrics=metrics)
    healthy = {"worker": "busy"}
    for _ in range(SLOW_POLLS_TO_UNHEALTHY - 1):
        await pool.poll_once()
        assert metrics.registry.get_sample_value("pandagpt_worker_healthy", healthy) == 1
    assert (await pool.readiness()).ready is False  # the third slow poll in a row
    assert metrics.registry.get_sample_value("pandagpt_worker_healthy", healthy) == 0
    await pool.aclose()
