"""A flood of maximum-size bodies against real processes, all-in-one and split.

Each mode gets its own service with a small memory budget (so the flood overruns
it many times over) and tight size caps. 24 requests at once, each carrying one
media item at the size cap: valid and corrupt, as `data:` URLs and as URLs the
gateway fetches from a local media server. The service must answer every one
with 200, 400, 413 or 429 (never a 5xx, never a dropped connection), keep each
process's peak resident memory within its idle baseline plus its budget (and a
fixed allowance for allocator slack), answer `/health/live` within a second
throughout, report no event-loop stall of 100 ms or more, and serve a valid
request afterwards.

The valid image is a small picture padded to the cap with a JPEG comment: the
bytes are what the budget bounds; decoded pixels are bounded by the pixel cap
and the preprocessing threads, not by it.
"""

from __future__ import annotations

import asyncio
import base64
import io
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

from harness.deployments import Front, serve_or_split
from harness.local_servers import media_server
from harness.probes import HealthWatch, metric_value
from harness.proc_figures import proc_status_kib

pytestmark = pytest.mark.slow

MEDIA_BYTES = 6 * 2**20
BUDGET_BYTES = 48 * 2**20
FLOOD = 24
# Allocator slack, interpreter caches and short-lived copies outside any reservation.
ALLOWANCE_BYTES = 40 * 2**20
ENV = {
    "PANDAGPT_MAX_MEDIA_BYTES": str(MEDIA_BYTES + 2**20),
    "PANDAGPT_MAX_BODY_BYTES": str(int(MEDIA_BYTES * 1.4) + 2**20),
    "PANDAGPT_MEMORY_BUDGET_BYTES": str(BUDGET_BYTES),
    "PANDAGPT_MEDIA_ALLOW_NETWORKS": "127.0.0.0/8",
    "PANDAGPT_ENFORCE_EAGER": "true",
    "PANDAGPT_REQUEST_TIMEOUT_S": "300",
}


def padded_jpeg(size: int) -> bytes:
    """A valid 64×64 JPEG of exactly `size` bytes: the picture, then COM segments."""
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 120, 40)).save(buffer, format="JPEG")
    picture = buffer.getvalue()
    padding, left = [], size - len(picture)
    while left > 0:
        body = min(left - 4, 65533)
        padding.append(b"\xff\xfe" + (body + 2).to_bytes(2, "big") + b"p" * body)
        left -= body + 4
    return picture[:2] + b"".join(padding) + picture[2:]  # after SOI


def corrupt_jpeg(size: int) -> bytes:
    return b"\xff\xd8\xff\xe0" + bytes(range(256)) * (size // 256)


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The four kinds of media part: valid/corrupt × data: URL/fetched URL."""
    root = tmp_path_factory.mktemp("flood-media")
    valid, corrupt = padded_jpeg(MEDIA_BYTES), corrupt_jpeg(MEDIA_BYTES)
    Image.open(io.BytesIO(valid)).load()  # it really is a valid image
    (root / "valid.jpg").write_bytes(valid)
    (root / "corrupt.jpg").write_bytes(corrupt)
    with media_server(root) as url:
        yield {
            "valid-data": "data:image/jpeg;base64," + base64.b64encode(valid).decode(),
            "corrupt-data": "data:image/jpeg;base64," + base64.b64encode(corrupt).decode(),
            "valid-url": f"{url}/valid.jpg",
            "corrupt-url": f"{url}/corrupt.jpg",
        }


@pytest.fixture(scope="module", params=["serve", "split"])
def deployment(
    request: pytest.FixtureRequest, tiny_model_dir: Path, hardening_logs: Path
) -> Iterator[Front]:
    """`urls` name each process's base URL (its /metrics), `pids` the processes that
    hold request data: gateway side, worker side."""
    with serve_or_split(
        request.param, tiny_model_dir, hardening_logs, ENV, name="serve-flood"
    ) as front:
        yield front


async def flood(url: str, model: str, parts: list[str]) -> Counter[tuple[int | str, str]]:
    """(status, error code) of each answer; (exception name, "") when none came."""
    async with httpx.AsyncClient(
        base_url=url, timeout=300, limits=httpx.Limits(max_connections=len(parts))
    ) as client:

        async def one(media_url: str) -> tuple[int | str, str]:
            part = {"type": "image_url", "image_url": {"url": media_url}}
            content = [{"type": "text", "text": "What is this?"}, part]
            body = {"model": model, "messages": [{"role": "user", "content": content}]}
            try:
                response = await client.post("/v1/chat/completions", json={**body, "max_tokens": 1})
            except httpx.HTTPError as exc:
                return type(exc).__name__, ""
            if response.status_code == 200:
                return 200, ""
            return response.status_code, str(response.json()["error"]["code"])

        return Counter(await asyncio.gather(*(one(p) for p in parts)))


def slow_ticks(url: str) -> float:
    """How many event-loop timer ticks came 100 ms or more late, so far."""
    text = httpx.get(f"{url}/metrics", timeout=30).text
    late = metric_value(text, "pandagpt_event_loop_lag_seconds_count")
    return late - metric_value(text, "pandagpt_event_loop_lag_seconds_bucket", le="0.1")


def reset_peak_rss(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM := VmRSS (Linux)


def test_a_flood_of_maximum_size_media_is_answered_within_the_memory_budget(
    deployment: Front, media: dict[str, str], record_property
) -> None:
    model = httpx.get(f"{deployment.url}/v1/models", timeout=30).json()["data"][0]["id"]
    kinds = list(media)
    # One of each first, one at a time: first-use costs (code paths, pools, connections)
    # are not the flood's, and the peak is measured from here.
    warm_up = asyncio.run(flood(deployment.url, model, [media[kind] for kind in kinds[:1]]))
    for kind in kinds[1:]:
        warm_up += asyncio.run(flood(deployment.url, model, [media[kind]]))
    assert {status for status, _ in warm_up} <= {200, 400}, warm_up
    parts = [media[kinds[i % len(kinds)]] for i in range(FLOOD)]
    for pid in deployment.pids.values():
        reset_peak_rss(pid)
    stalls_before = {name: slow_ticks(url) for name, url in deployment.urls.items()}
    baseline = {name: proc_status_kib(pid, "VmRSS") * 1024 for name, pid in deployment.pids.items()}
    watch = HealthWatch(deployment.url)
    watcher = threading.Thread(target=watch.run, daemon=True)
    watcher.start()
    try:
        answers = asyncio.run(flood(deployment.url, model, parts))
    finally:
        watch.stop.set()
        watcher.join(30)
    peak = {name: proc_status_kib(pid, "VmHWM") * 1024 for name, pid in deployment.pids.items()}
    # Loop stalls of 100 ms or more during the flood: the histogram's count beyond that
    # bucket, after minus before (start-up and warm-up are not the flood's).
    stalls = {name: slow_ticks(url) - stalls_before[name] for name, url in deployment.urls.items()}
    statuses = Counter(status for status, _ in answers.elements())
    figures = {
        "answers": {f"{status} {code}".strip(): n for (status, code), n in answers.items()},
        "growth_mib": {k: round((peak[k] - baseline[k]) / 2**20) for k in peak},
        "slowest_health_s": round(watch.slowest_s, 3),
        "stalls_over_100ms": stalls,
    }
    record_property("flood", figures)
    print(f"flood ({len(parts)} x {MEDIA_BYTES / 2**20:.0f} MiB media): {figures}")
    assert set(statuses) <= {200, 400, 413, 429}, answers
    assert statuses[429] > 0, f"the flood never reached the budget: {statuses}"
    assert statuses[200] + statuses[400] > 0, f"nothing was served: {statuses}"
    for name in peak:
        growth = peak[name] - baseline[name]
        assert growth <= BUDGET_BYTES + ALLOWANCE_BYTES, (name, growth / 2**20, statuses)
    assert not watch.failures and watch.slowest_s < 1.0, (watch.slowest_s, watch.failures)
    assert not any(stalls.values()), stalls
    after = httpx.post(
        f"{deployment.url}/v1/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2},
        timeout=120,
    )
    assert after.status_code == 200, after.text
