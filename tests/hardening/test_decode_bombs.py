"""Decode bombs against real processes, all-in-one and split: what a request costs the
service is bounded by what its media will decode into, not by the bytes sent.

For each class, eight distinct bombs go out at once (distinct bytes, so the feature
cache cannot answer a copy), and an ordinary image request is sent meanwhile:

- audio: 299 s of 8-channel 192 kHz silence in 125 KB of FLAC (1.8 GB as whole-file
  floats): decoded, 200, within its window reservation;
- video: one keyframe and 17,399 P-frames of 1080p (585 KB): 400 `media_too_complex`
  before decoding;
- codec: JPEG 2000 in Matroska: 400 `media_unsupported_codec`.

Every process's peak RSS must stay within 1 GiB of its baseline, `/health/live`
must answer within a second throughout, and the service must serve afterwards.
The image request's latency under the bombs, against its latency alone, is
reported (never asserted: `python -m bench.flood --bombs ...` measures it).
"""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from harness.bomb_requests import ask, bomb_parts, photo_part
from harness.deployments import Front, serve_or_split
from harness.probes import HealthWatch
from harness.proc_figures import proc_status_kib

pytestmark = pytest.mark.slow

BOMBS = 8
GROWTH_LIMIT = 2**30
ENV = {"PANDAGPT_ENFORCE_EAGER": "true", "PANDAGPT_REQUEST_TIMEOUT_S": "300"}


@pytest.fixture(scope="module", params=["serve", "split"])
def deployment(
    request: pytest.FixtureRequest, tiny_model_dir: Path, hardening_logs: Path
) -> Iterator[Front]:
    with serve_or_split(
        request.param, tiny_model_dir, hardening_logs, ENV, name="serve-bombs"
    ) as front:
        yield front


@pytest.fixture(scope="module")
def bombs() -> dict[str, list[dict[str, object]]]:
    return {kind: bomb_parts(kind, BOMBS) for kind in ("audio", "video", "codec")}


EXPECTED = {
    "audio": "200",
    "video": "400 media_too_complex",
    "codec": "400 media_unsupported_codec",
}


@pytest.mark.parametrize("kind", ["audio", "video", "codec"])
def test_eight_bombs_at_once_stay_within_memory_and_leave_room_for_an_image(
    deployment: Front, bombs: dict[str, list[dict[str, object]]], kind: str, record_property
) -> None:
    model = httpx.get(f"{deployment.url}/v1/models", timeout=30).json()["data"][0]["id"]
    asyncio.run(_ask(deployment.url, model, [bombs[kind][0]]))  # first-use costs, not the flood's
    alone = [_image_latency(deployment.url, model, seed) for seed in range(3)]
    for pid in deployment.pids.values():
        Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM := VmRSS (Linux)
    baseline = {name: proc_status_kib(pid, "VmRSS") * 1024 for name, pid in deployment.pids.items()}
    watch = HealthWatch(deployment.url)
    watcher = threading.Thread(target=watch.run, daemon=True)
    watcher.start()
    loaded: list[float] = []
    image = threading.Thread(
        target=lambda: (time.sleep(0.3), loaded.append(_image_latency(deployment.url, model, 99)))
    )
    image.start()
    try:
        answers = asyncio.run(_ask(deployment.url, model, bombs[kind][1:] + bombs[kind][:1]))
    finally:
        image.join(300)
        watch.stop.set()
        watcher.join(30)
    peak = {name: proc_status_kib(pid, "VmHWM") * 1024 for name, pid in deployment.pids.items()}
    growth = {name: peak[name] - baseline[name] for name in peak}
    figures = {
        "answers": dict(answers),
        "growth_mib": {name: round(g / 2**20) for name, g in growth.items()},
        "slowest_health_s": round(watch.slowest_s, 3),
        "image_alone_s": round(statistics.median(alone), 3),
        "image_under_bombs_s": round(loaded[0], 3) if loaded else None,
    }
    record_property(f"bombs_{kind}", figures)
    print(f"{kind} bombs x {BOMBS}: {figures}")
    assert answers == Counter({EXPECTED[kind]: BOMBS}), answers
    assert all(g <= GROWTH_LIMIT for g in growth.values()), figures
    assert not watch.failures and watch.slowest_s < 1.0, (watch.slowest_s, watch.failures)
    assert loaded, "the image request sent among the bombs got no answer"


async def _ask(url: str, model: str, parts: list[dict[str, object]]) -> Counter[str]:
    """The answer ("status [error code]") of each request, all sent at once."""
    limits = httpx.Limits(max_connections=len(parts))
    async with httpx.AsyncClient(base_url=url, timeout=300, limits=limits) as client:
        answers = await asyncio.gather(*(ask(client, model, part) for part in parts))
    return Counter(answer for answer, _ in answers)


def _image_latency(url: str, model: str, seed: int) -> float:
    """Seconds for one chat request with a fresh photo-like JPEG (a cache miss)."""

    async def one() -> tuple[str, float]:
        async with httpx.AsyncClient(base_url=url, timeout=300) as client:
            return await ask(client, model, photo_part(seed))

    answer, seconds = asyncio.run(one())
    assert answer == "200", answer
    return seconds
