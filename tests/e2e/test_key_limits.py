"""Per-key limits, usage and priorities over real processes: one worker (real vLLM on
the demo weights, priority scheduling on), two gateways sharing one throwaway Redis,
the official `openai` client reading the rate-limit headers.

Budgets are per minute, so each test exhausts one without waiting; nothing here
depends on timing. The gateways admit one request at a time with a queue behind
it, which makes the priority order observable. A request is held at a point of the
test's choosing by media that a gated server answers only once the test opens it
(a stream of many tokens was not enough: the tiny engine could finish it before the
test looked). The last test stops Redis.
"""

from __future__ import annotations

import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import openai
import pytest

from harness.deployments import WorkerSpec, split_deployment
from harness.probes import metric, metrics_text
from harness.processes import RedisServer, redis_server
from tests.utils.gate import Gate, gated_media

pytestmark = pytest.mark.slow

KEYS = {
    "per-minute": "sk-e2e-per-minute-000000",
    "tokens": "sk-e2e-tokens-0000000000",
    "single": "sk-e2e-single-0000000000",
    "open": "sk-e2e-open-000000000000",
    "batch": "sk-e2e-batch-00000000000",
}
KEY_FILE = f"""# the YAML format of PANDAGPT_API_KEY_FILE
keys:
  - name: per-minute
    key: {KEYS["per-minute"]}
    requests_per_minute: 3
  - name: tokens
    key: {KEYS["tokens"]}
    tokens_per_minute: 100
  - name: single
    key: {KEYS["single"]}
    max_concurrent: 1
  - name: open
    key: {KEYS["open"]}
  - name: batch
    key: {KEYS["batch"]}
    priority: 10
"""
HELLO = [{"role": "user", "content": "Hello!"}]


@dataclass
class Deployment:
    gateways: list[str]  # base URLs, both on the same Redis
    redis: RedisServer
    model: str


@pytest.fixture(scope="module")
def deployment(demo_model_dir: Path, e2e_logs: Path, tmp_path_factory) -> Iterator[Deployment]:
    key_file = tmp_path_factory.mktemp("keys") / "keys.yaml"
    key_file.write_text(KEY_FILE)
    with (
        redis_server(e2e_logs) as redis,  # the gateways' shared limits; workers cache nothing
        split_deployment(
            demo_model_dir,
            e2e_logs,
            workers=[WorkerSpec("worker")],
            gateways=("gateway-a", "gateway-b"),
            cache=False,
            worker_env={
                "PANDAGPT_ENFORCE_EAGER": "true",
                "PANDAGPT_SCHEDULING_POLICY": "priority",
            },
            gateway_env={
                "PANDAGPT_API_KEY_FILE": str(key_file),
                "PANDAGPT_REDIS_URL": redis.url,
                "PANDAGPT_RATELIMIT_PREFIX": f"pandagpt-e2e-{uuid.uuid4().hex[:8]}:",
                "PANDAGPT_MAX_CONCURRENT_REQUESTS": "1",
                "PANDAGPT_MAX_QUEUED_REQUESTS": "4",
                "PANDAGPT_MEDIA_ALLOW_NETWORKS": "127.0.0.0/8",  # the gated media server
            },
            prefix="limits-",
        ) as split,
    ):
        urls = list(split.gateways.values())
        model = client(urls[0], "open").models.list().data[0].id
        yield Deployment(urls, redis, model)


def client(base_url: str, key: str) -> openai.OpenAI:
    # No retries: the client would otherwise answer a 429 by waiting and trying again.
    return openai.OpenAI(base_url=f"{base_url}/v1", api_key=KEYS[key], max_retries=0)


def chat(base_url: str, key: str, model: str, **kwargs: object):  # a raw response
    return client(base_url, key).chat.completions.with_raw_response.create(
        model=model, messages=HELLO, **{"max_tokens": 4, **kwargs}
    )


def test_requests_per_minute_shared_by_two_gateways(deployment: Deployment) -> None:
    a, b = deployment.gateways
    remaining = []
    for base in (a, b, a):
        raw = chat(base, "per-minute", deployment.model)
        assert raw.http_response.status_code == 200
        assert raw.headers["x-ratelimit-limit-requests"] == "3"
        assert raw.headers["x-ratelimit-reset-requests"].endswith("s")
        assert "x-ratelimit-limit-tokens" not in raw.headers  # no token limit on this key
        remaining.append(raw.headers["x-ratelimit-remaining-requests"])
        assert raw.parse().choices[0].message.content is not None
    assert remaining == ["2", "1", "0"]  # one budget across both gateways

    with pytest.raises(openai.RateLimitError) as info:
        chat(b, "per-minute", deployment.model)
    refused = info.value.response
    assert info.value.code == "rate_limit_exceeded"
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    assert 1 <= int(refused.headers["retry-after"]) <= 20  # a request refills every 20 s
    assert metric(b, "pandagpt_key_refusals_total", key="per-minute", reason="requests") == 1
    admitted = sum(
        metric(g, "pandagpt_key_requests_total", key="per-minute", endpoint="chat") for g in (a, b)
    )
    assert admitted == 3
    for base in (a, b):  # the key's name labels the metrics, the key itself appears nowhere
        assert KEYS["per-minute"] not in metrics_text(base)


def test_tokens_per_minute_reserved_and_settled(deployment: Deployment) -> None:
    a, b = deployment.gateways
    before = metric(a, "pandagpt_key_completion_tokens_total", key="tokens")
    raw = chat(a, "tokens", deployment.model, max_tokens=60, extra_body={"ignore_eos": True})
    usage = raw.parse().usage
    assert raw.headers["x-ratelimit-limit-tokens"] == "100"
    # Reserved at admission: max_tokens × n and the prompt's estimate.
    assert int(raw.headers["x-ratelimit-remaining-tokens"]) <= 100 - 60
    # Settled at the end with the worker's usage.
    assert metric(a, "pandagpt_key_completion_tokens_total", key="tokens") - before == (
        usage.completion_tokens
    )
    assert metric(a, "pandagpt_key_prompt_tokens_total", key="tokens") >= usage.prompt_tokens
    # That usage plus the next reservation is over a minute's budget: 429 on tokens.
    assert usage.total_tokens + 80 > 100
    with pytest.raises(openai.RateLimitError) as info:
        chat(b, "tokens", deployment.model, max_tokens=80)
    headers = info.value.response.headers
    assert int(headers["x-ratelimit-remaining-tokens"]) < 80
    assert int(headers["retry-after"]) >= 1
    assert metric(b, "pandagpt_key_refusals_total", key="tokens", reason="tokens") == 1


def test_max_concurrent_across_gateways(deployment: Deployment) -> None:
    a, b = deployment.gateways
    model = deployment.model
    with gated_media() as gate, ThreadPoolExecutor(1) as pool:
        held = pool.submit(held_chat, gate, a, "single", model)
        assert wait_for(lambda: gate.arrivals == 1)  # admitted: it holds the key's one lease
        with pytest.raises(openai.RateLimitError) as info:
            chat(b, "single", model)
        assert "concurrent" in info.value.message
        gate.opened.set()
        assert held.result(timeout=120) == 200
    # The lease comes back once the request's end is settled (in the background).
    assert wait_for(lambda: _status(b, "single", model) == 200)
    assert metric(b, "pandagpt_key_refusals_total", key="single", reason="concurrency") >= 1


def test_priority_orders_the_admission_queue(deployment: Deployment) -> None:
    """Capacity held; `low` (5), then `batch` (asks for -5, its key's floor is 10), then
    `high` (-1) queue; released, they are admitted high, low, batch. A request fetches its
    media only once admitted, so the gate sees the admission order (the order the clients
    hear their answers in is not it: with one place they end milliseconds apart)."""
    gateway = deployment.gateways[0]
    model = deployment.model
    with gated_media() as gate, ThreadPoolExecutor(4) as pool:
        holder = pool.submit(held_chat, gate, gateway, "open", model)
        assert wait_for(lambda: gate.arrivals == 1)  # the gateway's one place is taken
        queued = metric(gateway, "pandagpt_requests_queued")
        futures: list[Future[int]] = []
        for name, key, priority in (
            ("low", "open", 5),
            ("batch", "batch", -5),
            ("high", "open", -1),
        ):
            futures.append(
                pool.submit(held_chat, gate, gateway, key, model, priority=priority, tag=name)
            )
            queued += 1
            assert wait_for(lambda q=queued: metric(gateway, "pandagpt_requests_queued") == q)
        gate.opened.set()  # the holder ends and frees the place: the queue's head gets it, ...
        assert [f.result(timeout=120) for f in (holder, *futures)] == [200] * 4
    assert [urllib.parse.urlsplit(path).query for path in gate.paths] == [
        "",
        "high",
        "low",
        "batch",
    ]


def test_redis_down_falls_back_to_per_process_limits(deployment: Deployment) -> None:
    a, _ = deployment.gateways
    deployment.redis.stop()
    # Nothing is refused because Redis is down; the shared budget of `per-minute`
    # (spent above) gives way to this process's own.
    for key in ("open", "per-minute"):
        raw = chat(a, key, deployment.model)
        assert raw.http_response.status_code == 200
    assert metric(a, "pandagpt_ratelimit_degraded") == 1
    assert raw.headers["x-ratelimit-remaining-requests"] == "2"
    assert metric(a, "pandagpt_ratelimit_redis_errors_total") >= 1


def wait_for(condition: Callable[[], bool], timeout_s: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def held_chat(
    gate: Gate, base_url: str, key: str, model: str, priority: int = 0, tag: str = ""
) -> int:
    """A chat whose image waits behind `gate` (its URL's query is `tag`): its status."""
    url = f"{gate.url}/bird_image.jpg" + (f"?{tag}" if tag else "")
    content = [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": url}},
    ]
    raw = client(base_url, key).chat.completions.with_raw_response.create(
        model=model,
        messages=[{"role": "user", "content": content}],
        max_tokens=4,
        extra_body={"priority": priority},
    )
    return raw.http_response.status_code


def _status(base_url: str, key: str, model: str) -> int:
    try:
        return chat(base_url, key, model).http_response.status_code
    except openai.APIStatusError as exc:
        return exc.status_code
