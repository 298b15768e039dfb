"""Split mode under load and faults: real gateway, two real workers (small demo preset),
a throwaway Redis. Tests run in file order on one deployment, each leaving it whole:

1. the 2-minute soak (16 clients, mixed load; RSS, fds, running count checked),
2. Redis SIGKILLed and restarted mid-load: every request answered, no cache hit while it
   is down, hits recover once it is back,
3. a hung worker (SIGSTOP): the gateway's request timeout answers 504, not a hang,
4. a worker SIGKILLed mid-stream: its streams end with an error event, the other
   worker's finish; the gateway routes around it and back once it returns,
5. the gateway SIGKILLed with streams in flight: clients see a connection error and the
   workers' running counts return to 0; a new gateway on the same port serves.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import redis

from harness.deployments import Split, split_deployment
from harness.probes import metric, readiness
from harness.processes import free_port, start_pandagpt
from tests.hardening.conftest import RecordProperty
from tests.hardening.soak import run_soak
from tests.utils.media import data_url, image_part, media_bytes, text_part

pytestmark = pytest.mark.slow

# The main gateway's request timeout is long (a loaded CPU streams slowly); the hang test
# runs its own gateway over the same workers with a short one, and waits it out.
GATEWAY_TIMEOUT_S = 300.0
HANG_TIMEOUT_S = 10.0
IMAGES = ("bird_image.jpg", "car_image.jpg", "dog_image.jpg")


@pytest.fixture(scope="module")
def split(small_model_dir: Path, hardening_logs: Path) -> Iterator[Split]:
    with split_deployment(
        small_model_dir,
        hardening_logs,
        # a generous Redis timeout: on a loaded machine slow answers would count as misses
        worker_env={"PANDAGPT_ENFORCE_EAGER": "true", "PANDAGPT_CACHE_SOCKET_TIMEOUT_S": "2"},
        gateway_env={"PANDAGPT_REQUEST_TIMEOUT_S": str(GATEWAY_TIMEOUT_S)},
    ) as deployment:
        yield deployment


@pytest.fixture(scope="module")
def model(split: Split) -> str:
    response = httpx.get(f"{split.gateway}/v1/models", timeout=30)
    return str(response.json()["data"][0]["id"])


def _chat(model: str, content: object, **extra: object) -> dict[str, object]:
    return {"model": model, "messages": [{"role": "user", "content": content}], **extra}


@dataclass
class StreamResult:
    status: int = 0
    chunks: int = 0
    finished: bool = False  # a finish_reason arrived
    error: str | None = None  # an error event arrived
    done: bool = False  # data: [DONE] arrived
    transport_error: str | None = None
    events: list[str] = field(default_factory=list)


async def _stream(
    client: httpx.AsyncClient, model: str, started: asyncio.Event | None, max_tokens: int = 400
) -> StreamResult:
    result = StreamResult()
    body = _chat(model, "Tell me a long story", max_tokens=max_tokens, ignore_eos=True, stream=True)
    try:
        async with client.stream("POST", "/v1/chat/completions", json=body) as response:
            result.status = response.status_code
            async for line in response.aiter_lines():
                if not line.startswith("data: "):
                    continue
                data = line[len("data: ") :]
                if data == "[DONE]":
                    result.done = True
                    continue
                event = json.loads(data)
                if "error" in event:
                    result.error = str(event["error"].get("code"))
                    continue
                result.chunks += 1
                if started is not None and result.chunks >= 2:
                    started.set()
                if any(c.get("finish_reason") for c in event.get("choices", [])):
                    result.finished = True
    except httpx.TransportError as exc:
        result.transport_error = type(exc).__name__
    return result


def _worker_running(split: Split) -> dict[str, int]:
    counts = {}
    for name, url in split.workers.items():
        state = readiness(url)
        counts[name] = int(state["running"]) + int(state["waiting"])  # type: ignore[call-overload]
    return counts


def _wait(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def _healthy(split: Split, name: str, gateway: str | None = None) -> bool:
    url = gateway or split.gateway
    return metric(url, "pandagpt_worker_healthy", worker=split.workers[name]) == 1


def _jobs(split: Split, name: str) -> float:
    return metric(split.workers[name], "pandagpt_queue_time_seconds_count")


# --- 1. soak ---


def test_soak_two_minutes(split: Split, record_property: RecordProperty) -> None:
    report = run_soak(split, minutes=2.0, clients=16)
    summary = report.summary()
    for key in ("requests", "errors", "rss_growth_pct", "latency_p50_s", "latency_p99_s"):
        record_property(f"soak_{key}", json.dumps(summary[key]))
    print("soak (2 min):", json.dumps(summary))
    assert not report.failures(), report.failures()


# --- 2. Redis killed and restarted mid-load ---

# Cache lookups per window: enough for a ratio, few enough to keep the test short.
WINDOW_LOOKUPS = 12
LOAD_CLIENTS = 4


def _cache_counts(split: Split) -> tuple[float, float, float]:
    """(hits, misses, errors) over the workers; a failed lookup is also a miss."""
    hits = sum(metric(u, "pandagpt_cache_hits_total") for u in split.workers.values())
    misses = sum(metric(u, "pandagpt_cache_misses_total") for u in split.workers.values())
    errors = sum(metric(u, "pandagpt_cache_errors_total") for u in split.workers.values())
    return hits, misses, errors


def _redis_client(split: Split) -> redis.Redis:
    return redis.Redis(port=split.redis.port, socket_timeout=2, socket_connect_timeout=2)


def _redis_answers(split: Split) -> bool:
    client = _redis_client(split)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def _images_cached(split: Split) -> bool:
    """Redis holds the feature of every image the load asks about (keys end in the sha256)."""
    prefix = split.worker_envs["worker-a"]["PANDAGPT_CACHE_PREFIX"]
    client = _redis_client(split)
    try:
        return all(
            next(client.scan_iter(match=f"{prefix}*:image:{digest}", count=1000), None)
            for digest in (hashlib.sha256(media_bytes(name)).hexdigest() for name in IMAGES)
        )
    except redis.RedisError:
        return False
    finally:
        client.close()


def _cache_degraded(split: Split) -> list[bool]:
    return [bool(readiness(url)["cache_degraded"]) for url in split.workers.values()]


class _ImageLoad:
    """Clients asking about the fixture images until stopped. Each client counts its
    answers, so the test knows when every request sent before a moment has finished."""

    def __init__(self, split: Split, model: str) -> None:
        self.split = split
        self.model = model
        self.outcomes: list[str] = []
        self.answered = [0] * LOAD_CLIENTS
        self.stop = asyncio.Event()

    async def run(self) -> list[str]:
        await asyncio.gather(*(self._client_loop(i) for i in range(LOAD_CLIENTS)))
        return self.outcomes

    async def _client_loop(self, i: int) -> None:
        async with httpx.AsyncClient(base_url=self.split.gateway, timeout=60) as client:
            n = i
            while not self.stop.is_set():
                n += 1
                content = [text_part("What?"), image_part(data_url(IMAGES[n % len(IMAGES)]))]
                try:
                    response = await client.post(
                        "/v1/chat/completions", json=_chat(self.model, content, max_tokens=2)
                    )
                    self.outcomes.append(str(response.status_code))
                except httpx.TransportError as exc:
                    self.outcomes.append(type(exc).__name__)
                self.answered[i] += 1

    async def settle(self) -> None:
        """Return once every client has had the answer to the request it had in flight:
        every cache lookup begun before this call is then counted."""
        marks = list(self.answered)
        await _until(
            lambda: all(now > then for now, then in zip(self.answered, marks, strict=True)),
            120,
            "every load client to finish its request in flight",
        )

    async def window(self) -> tuple[float, float, float]:
        """(hits, misses, errors) of the next WINDOW_LOOKUPS or more lookups, from now on."""
        h0, m0, e0 = await asyncio.to_thread(_cache_counts, self.split)
        deadline = time.monotonic() + 120
        while True:
            h1, m1, e1 = await asyncio.to_thread(_cache_counts, self.split)
            if h1 - h0 + m1 - m0 >= WINDOW_LOOKUPS:
                return h1 - h0, m1 - m0, e1 - e0
            assert time.monotonic() < deadline, f"{WINDOW_LOOKUPS} lookups took over 120 s"
            await asyncio.sleep(0.2)

    async def healthy_window(self) -> tuple[float, float]:
        """(hits, misses) of a window in which no lookup failed and no worker skipped Redis.
        On a loaded machine a live Redis can still time out (the workers' 2 s), and a
        worker then skips it for its 2 s backoff: those misses say nothing of whether
        hits came back, so such a window is measured again (up to 5 times)."""
        for _ in range(5):
            await self.settle()
            degraded_before = any(await asyncio.to_thread(_cache_degraded, self.split))
            hits, misses, errors = await self.window()
            if not errors and not degraded_before:
                return hits, misses
        return hits, misses


async def _until(
    predicate: Callable[[], bool], timeout: float, what: str, *, blocking: bool = False
) -> None:
    """`_wait` inside the load's event loop; a `blocking` predicate runs in a thread."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = (await asyncio.to_thread(predicate)) if blocking else predicate()
        if done:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


async def _redis_fault(split: Split, model: str) -> tuple[list[str], list[tuple[float, float]]]:
    """Cache counts over three windows of image load, each opened only once its state is
    confirmed and the requests sent before that have finished (windows are counted in
    lookups, not seconds): Redis up with the images cached; Redis SIGKILLed, its port
    refusing and every worker reporting its cache degraded; Redis restarted (empty),
    every worker's cache healthy again and the images cached anew."""
    load = _ImageLoad(split, model)
    running = asyncio.create_task(load.run())
    try:
        before = await load.healthy_window()

        await asyncio.to_thread(split.redis.kill)
        assert not await asyncio.to_thread(_redis_answers, split)
        await _until(
            lambda: all(_cache_degraded(split)),
            60,
            "every worker to report its cache degraded",
            blocking=True,
        )
        await load.settle()
        during = (await load.window())[:2]

        await asyncio.to_thread(split.redis.start)  # same port, empty
        await _until(
            lambda: not any(_cache_degraded(split)) and _images_cached(split),
            60,
            "every worker to use Redis again and the images to be cached anew",
            blocking=True,
        )
        after = await load.healthy_window()
    finally:
        load.stop.set()
        outcomes = await running
        if split.redis.proc is None:  # failed while it was down: the next tests expect it
            await asyncio.to_thread(split.redis.start)
    return outcomes, [before, during, after]


def _warm_cache(split: Split, model: str) -> None:
    """Ask about each image once (a miss stores it), until Redis holds all of them."""
    with httpx.Client(base_url=split.gateway, timeout=60) as client:
        for _ in range(5):
            for name in IMAGES:
                content = [text_part("What?"), image_part(data_url(name))]
                body = _chat(model, content, max_tokens=2)
                assert client.post("/v1/chat/completions", json=body).status_code == 200
            if _images_cached(split):
                return
    raise AssertionError("the images never reached Redis")


def test_redis_killed_mid_load(split: Split, model: str, record_property: RecordProperty) -> None:
    _warm_cache(split, model)
    statuses, windows = asyncio.run(_redis_fault(split, model))
    (h_before, m_before), (h_during, m_during), (h_after, m_after) = windows

    def ratio(h: float, m: float) -> float:
        return h / (h + m) if h + m else 0.0

    before, during, after = (ratio(h, m) for h, m in windows)
    record_property("redis_requests", len(statuses))
    record_property("redis_hit_ratio", f"{before:.2f}/{during:.2f}/{after:.2f}")
    print(
        f"redis fault: {len(statuses)} requests; hits/lookups with Redis up "
        f"{h_before:.0f}/{h_before + m_before:.0f}, down {h_during:.0f}/{h_during + m_during:.0f}, "
        f"back {h_after:.0f}/{h_after + m_after:.0f}"
    )
    assert statuses and all(s == "200" for s in statuses), sorted(set(statuses))
    # Slow Redis answers count as misses (the workers' 2 s timeout), so up is not always 1.0.
    assert before > 0.8, windows
    assert h_during == 0, f"a cache hit while Redis was down: {windows}"
    assert after > 0.8, f"cache hits did not recover after Redis came back: {windows}"


# --- 3. a hung worker ---


def test_hung_worker_times_out_not_hangs(
    split: Split, model: str, hardening_logs: Path, record_property: RecordProperty
) -> None:
    port = free_port()
    env = {**split.gateway_env, "PANDAGPT_REQUEST_TIMEOUT_S": str(HANG_TIMEOUT_S)}
    short = start_pandagpt(
        "gateway-short-timeout", split.gateway_argv, port=port, env=env, log_dir=hardening_logs
    )
    gateway = f"http://127.0.0.1:{port}"
    hung = split.procs["worker-b"]

    async def burst() -> list[tuple[int, float]]:
        async with httpx.AsyncClient(base_url=gateway, timeout=HANG_TIMEOUT_S + 60) as client:

            async def one() -> tuple[int, float]:
                start = time.monotonic()
                response = await client.post(
                    "/v1/chat/completions", json=_chat(model, "Hello", max_tokens=4)
                )
                return response.status_code, time.monotonic() - start

            return list(await asyncio.gather(*(one() for _ in range(4))))

    try:
        hung.signal_group(signal.SIGSTOP)
        try:
            results = asyncio.run(burst())
            _wait(
                lambda: not _healthy(split, "worker-b", gateway),
                15,
                "the gateway to mark worker-b down",
            )
            after = asyncio.run(burst())
        finally:
            hung.signal_group(signal.SIGCONT)
        statuses = [s for s, _ in results]
        slowest = max(t for _, t in results)
        record_property("hang_statuses", str(sorted(statuses)))
        record_property("hang_slowest_s", round(slowest, 1))
        print(f"hung worker: statuses {sorted(statuses)}, slowest {slowest:.1f}s; after: {after}")
        assert set(statuses) <= {200, 503, 504} and {503, 504} & set(statuses), results
        assert slowest < HANG_TIMEOUT_S + 15
        assert all(s == 200 for s, _ in after), after  # routed to the live worker
        _wait(lambda: _healthy(split, "worker-b", gateway), 30, "worker-b to be healthy again")
        _wait(lambda: sum(_worker_running(split).values()) == 0, 30, "running counts at 0")
    finally:
        short.stop(timeout=10)


# --- 4. a worker SIGKILLed mid-stream ---


async def _streams_then(
    split: Split, model: str, n: int, action: object, max_tokens: int = 400
) -> list[StreamResult]:
    async with httpx.AsyncClient(base_url=split.gateway, timeout=120) as client:
        started = [asyncio.Event() for _ in range(n)]
        tasks = [asyncio.create_task(_stream(client, model, e, max_tokens)) for e in started]
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in started)), 120)
        action()  # type: ignore[operator]
        return list(await asyncio.wait_for(asyncio.gather(*tasks), 180))


def test_worker_killed_mid_stream(
    split: Split, model: str, record_property: RecordProperty
) -> None:
    victim = split.procs["worker-a"]

    def kill() -> None:
        # Every stream has started and none can have ended (400 tokens, ignore_eos: seconds
        # of work), so the victim dies with streams of its own in flight.
        assert _worker_running(split)["worker-a"] >= 1
        victim.signal_group(signal.SIGKILL)

    try:
        _killed_mid_stream(split, model, kill, record_property)
    finally:
        current = split.procs["worker-a"]
        if not current.alive:  # the next test needs both workers, whatever happened here
            current.stop(timeout=5)
            split.start_worker("worker-a")


def _killed_mid_stream(
    split: Split, model: str, kill: object, record_property: RecordProperty
) -> None:
    # The pool spreads the four streams over both workers only once it sees both ready
    # (an earlier test may have left one marked down for a poll or two).
    _wait(lambda: _healthy(split, "worker-a") and _healthy(split, "worker-b"), 30, "both workers")
    # Answers short enough for the survivor's streams to finish well inside the gateway's
    # timeout on a loaded CPU, long enough to be cut short on the victim.
    results = asyncio.run(_streams_then(split, model, 4, kill, max_tokens=400))
    errored = [r for r in results if r.error is not None]
    finished = [r for r in results if r.finished and r.error is None]
    record_property("kill_streams", f"{len(errored)} error event / {len(finished)} finished")
    print(
        f"worker SIGKILL: {len(errored)} streams ended with an error event, "
        f"{len(finished)} finished"
    )
    assert all(r.status == 200 and r.done and r.transport_error is None for r in results), results
    assert errored and finished and len(errored) + len(finished) == len(results), results
    _wait(lambda: not _healthy(split, "worker-a"), 15, "the gateway to mark worker-a down")
    survivors = asyncio.run(_burst_statuses(split, model, 6))
    assert survivors == [200] * 6, survivors

    split.procs["worker-a"].stop(timeout=5)
    split.start_worker("worker-a")  # same port; the gateway polls it back in
    _wait(lambda: _healthy(split, "worker-a"), 30, "worker-a to be healthy again")
    before = _jobs(split, "worker-a")
    assert asyncio.run(_burst_statuses(split, model, 6)) == [200] * 6
    assert _jobs(split, "worker-a") > before, "the gateway did not route to the returned worker"


async def _burst_statuses(split: Split, model: str, n: int) -> list[int]:
    async with httpx.AsyncClient(base_url=split.gateway, timeout=120) as client:
        responses = await asyncio.gather(
            *(
                client.post("/v1/chat/completions", json=_chat(model, "Hi", max_tokens=4))
                for _ in range(n)
            )
        )
    return [r.status_code for r in responses]


# --- 5. the gateway killed with requests in flight ---


def test_gateway_killed_with_streams_in_flight(
    split: Split, model: str, record_property: RecordProperty
) -> None:
    gateway = split.procs["gateway"]

    def kill() -> None:
        # All four streams are still generating (1000 tokens each): none can end cleanly.
        assert sum(_worker_running(split).values()) == 4
        gateway.signal_group(signal.SIGKILL)

    _wait(lambda: _healthy(split, "worker-a") and _healthy(split, "worker-b"), 30, "both workers")
    # As long as the 1024-token context allows: the first stream must still be far from its
    # end when the fourth has started (a 400-token one once finished before the kill landed).
    results = asyncio.run(_streams_then(split, model, 4, kill, max_tokens=1000))
    errors = sorted({r.transport_error or "none" for r in results})
    record_property("gateway_kill_client_errors", str(errors))
    print(f"gateway SIGKILL: client errors {errors}")
    assert all(r.transport_error and not r.done for r in results), results
    start = time.monotonic()
    _wait(lambda: sum(_worker_running(split).values()) == 0, 30, "workers to drop the streams")
    drain = time.monotonic() - start
    record_property("gateway_kill_drain_s", round(drain, 1))
    print(f"gateway SIGKILL: workers back to 0 running in {drain:.1f}s")
    gateway.stop(timeout=5)
    split.start_gateway()
    assert asyncio.run(_burst_statuses(split, model, 2)) == [200, 200]
