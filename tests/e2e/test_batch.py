"""`pandagpt batch` end to end: real `pandagpt batch` processes against a real
`pandagpt serve` on demo weights, and in process on the same weights.

One server for the module, with room for only `CAPACITY` requests at once (so
429s can be made on purpose), an API key, and loopback media fetching allowed so
that a test can hold a request at a point of its choosing: a *gated* media
server answers a fetch only once the test opens the gate. That makes the
interruption and the 429 deterministic instead of a race against the tiny
engine's speed.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from harness.deployments import serve_all_in_one
from harness.probes import metric, metric_value, metrics_text, wait_until_idle
from harness.processes import PANDAGPT, REPO_ROOT, Process, base_env
from tests.utils.gate import gated_media
from tests.utils.media import MEDIA_DIR

pytestmark = pytest.mark.slow

API_KEY = "e2e-batch-key-0001"
CAPACITY = 2  # PANDAGPT_MAX_CONCURRENT_REQUESTS of the module's server
ROUTES = ("/v1/chat/completions", "/v1/embeddings")


# --- the server, and running `pandagpt batch` ---


@pytest.fixture(scope="module")
def server(demo_root: Path, e2e_logs: Path) -> Iterator[str]:
    env = {
        "PANDAGPT_DEMO_DIR": str(demo_root),
        "PANDAGPT_API_KEYS": API_KEY,
        "PANDAGPT_ENFORCE_EAGER": "true",  # as in test_serve: no compile warm-up
        "PANDAGPT_MAX_CONCURRENT_REQUESTS": str(CAPACITY),
        "PANDAGPT_MEDIA_ALLOW_NETWORKS": "127.0.0.0/8",  # the gated media server
    }
    with serve_all_in_one(None, e2e_logs, "serve-batch", env, stop_timeout=60) as served:
        yield served.url


def batch_process(name: str, args: list[str], log_dir: Path, **env: str) -> Process:
    return Process(name, [*PANDAGPT, "batch", *args], base_env(**env), log_dir)


def finish(proc: Process, timeout: float = 180) -> int:
    try:
        code = proc.popen.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.stop(timeout=5)
        raise AssertionError(f"{proc.name} did not finish:\n{proc.log_tail()}") from None
    proc.stop()  # closes its log; leftovers of its process group (vLLM's) go too
    return code


def output_lines(path: Path) -> list[dict[str, Any]]:
    raw = path.read_bytes() if path.exists() else b""
    assert not raw or raw.endswith(b"\n"), "the output holds whole lines only"
    return [json.loads(line) for line in raw.splitlines()]


def wait_for(condition: Callable[[], bool], what: str, proc: Process, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if not proc.alive:
            raise AssertionError(f"{proc.name} exited before {what}:\n{proc.log_tail()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} after {timeout}s:\n{proc.log_tail()}")
        time.sleep(0.05)


def answered(base_url: str) -> float:
    """Requests the batch routes answered with anything but 429."""
    text = metrics_text(base_url)
    total = 0.0
    for route in ROUTES:
        total += _metric(text, route=route) - _metric(text, route=route, status="429")
    return total


def _metric(text: str, **labels: str) -> float:
    return metric_value(text, "pandagpt_http_requests_total", **labels)


def settle(base_url: str) -> None:
    """Wait until the server has nothing admitted (abandoned requests included)."""
    wait_until_idle(base_url, timeout_s=30)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        busy = metric(base_url, "pandagpt_requests_running")
        busy += metric(base_url, "pandagpt_requests_waiting")
        if busy == 0:
            return
        time.sleep(0.1)
    raise AssertionError("the server never went idle")


# --- the batches ---


def chat(custom_id: str, text: str, *parts: dict[str, Any]) -> dict[str, Any]:
    content = [{"type": "text", "text": text}, *parts]
    body = {"messages": [{"role": "user", "content": content}], "max_tokens": 4}
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": body}


def embed(custom_id: str, *inputs: Any) -> dict[str, Any]:
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/embeddings",
            "body": {"input": list(inputs)}}  # fmt: skip


def part(kind: str, url: str) -> dict[str, Any]:
    return {"type": kind, kind: {"url": url}}


def audio(path: str) -> dict[str, Any]:
    return {"type": "input_audio", "input_audio": {"data": path}}  # format from the file


def write_jsonl(path: Path, lines: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def mixed_batch(folder: Path, gate_url: str) -> list[dict[str, Any]]:
    """24 requests: chat and embeddings over every kind of part the fixtures allow,
    media by relative and absolute path, one corrupt and one missing file, and at
    position 8 one whose media waits behind the gate."""
    (folder / "media").mkdir()
    for name in ("bird_image.jpg", "dog_audio.wav", "car_image.jpg"):
        shutil.copy(MEDIA_DIR / name, folder / "media" / name)
    (folder / "media" / "corrupt.jpg").write_bytes((MEDIA_DIR / "dog_image.jpg").read_bytes()[:400])
    # A depth map is a single-channel image; the fixtures are RGB photos.
    Image.open(MEDIA_DIR / "210009.jpg").convert("L").resize((96, 96)).save(
        folder / "media" / "depth.png"
    )
    fixture = lambda name: str(MEDIA_DIR / name)  # noqa: E731  (absolute paths)
    dog = part("image_url", fixture("dog_image.jpg"))
    lines = [
        chat("c-bird", "What is it?", part("image_url", "media/bird_image.jpg")),
        embed("e-text", "a bird singing", "a dog barking"),
        chat("c-text", "Hello there"),
        chat("c-audio", "What do you hear?", audio("media/dog_audio.wav")),
        embed("e-bird", part("image_url", fixture("bird_image.jpg"))),
        chat("c-car", "Which colour?", part("image_url", "media/car_image.jpg")),
        embed("e-audio", part("audio_url", fixture("bird_audio.wav")), "birdsong"),
        chat("c-gated", "And this?", part("image_url", f"{gate_url}/bird_image.jpg")),
        chat("c-video", "Describe it.", part("video_url", fixture("a.mp4"))),
        chat("c-corrupt", "What is it?", part("image_url", "media/corrupt.jpg")),
        chat("c-missing", "What is it?", part("image_url", "media/missing.jpg")),
        chat("c-thermal", "What is warm?", part("thermal_url", fixture("190662.jpg"))),
        chat("c-depth", "What is near?", part("depth_url", "media/depth.png")),
        embed("e-dog", dog),
        chat("c-mix", "Match?", dog, audio(fixture("dog_audio.wav"))),
        embed("e-car", part("image_url", "media/car_image.jpg"), "a red car"),
    ]  # fmt: skip
    lines += [chat(f"c-more-{i}", f"Say {i}.") for i in range(4)]
    lines += [embed(f"e-more-{i}", f"text {i}") for i in range(4)]
    return lines


def test_in_process_on_demo_weights(demo_model_dir: Path, tmp_path: Path, e2e_logs: Path) -> None:
    """`batch make` on a folder, then `batch` without --url: the model in process."""
    folder = tmp_path / "archive"
    folder.mkdir()
    shutil.copy(MEDIA_DIR / "bird_image.jpg", folder / "bird.jpg")
    shutil.copy(MEDIA_DIR / "dog_audio.wav", folder / "dog.wav")
    batch_in = tmp_path / "batch.jsonl"
    make = [*PANDAGPT, "batch", "make", "--media", str(folder), "--prompt", "What is it?"]
    made = subprocess.run(
        [*make, "--max-tokens", "4", "-o", str(batch_in)], cwd=REPO_ROOT, env=base_env(),
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    with batch_in.open("a") as file:
        file.write(json.dumps(embed("emb", "a dog", part("image_url", "archive/bird.jpg"))) + "\n")
    out = tmp_path / "out.jsonl"
    proc = batch_process(
        "batch-in-process",
        [str(batch_in), "-o", str(out), "--model-dir", str(demo_model_dir)],
        e2e_logs,
        PANDAGPT_ENFORCE_EAGER="true",
        PANDAGPT_MAX_MODEL_LEN="1024",
    )
    assert finish(proc, timeout=400) == 0, proc.log_tail()
    lines = {line["custom_id"]: line for line in output_lines(out)}
    assert set(lines) == {"bird.jpg", "dog.wav", "emb"}
    for line in lines.values():
        assert line["error"] is None and line["response"]["status_code"] == 200, line
        assert line["response"]["request_id"]
    for cid in ("bird.jpg", "dog.wav"):
        body = lines[cid]["response"]["body"]
        assert body["usage"]["completion_tokens"] >= 1
        assert body["choices"][0]["finish_reason"] in {"stop", "length"}
    assert len(lines["emb"]["response"]["body"]["data"]) == 2
    assert "3 done now (3 succeeded, 0 failed)" in proc.log_tail()


def test_interrupted_run_resumes_every_request_exactly_once(
    server: str, tmp_path: Path, e2e_logs: Path
) -> None:
    out = tmp_path / "out.jsonl"
    with gated_media() as gate:
        requests = mixed_batch(tmp_path, gate.url)
        batch_in = write_jsonl(tmp_path / "batch.jsonl", requests)
        common = [str(batch_in), "-o", str(out), "--url", server, "--progress-interval", "0.2"]
        # One at a time: the 7 lines before the gated one finish, then it holds the run.
        first = batch_process(
            "batch-first", [*common, "--concurrency", "1"], e2e_logs, PANDAGPT_API_KEY=API_KEY
        )
        newlines = lambda: out.read_bytes().count(b"\n") if out.exists() else 0  # noqa: E731
        wait_for(lambda: gate.arrivals >= 1 and newlines() == 7, "7 lines", first)
        first.popen.send_signal(signal.SIGINT)
        assert finish(first) == 130, first.log_tail()
        before = out.read_bytes()
        done_first = [line["custom_id"] for line in output_lines(out)]
        assert len(done_first) == 7 and "c-gated" not in done_first
        assert "Stopped by SIGINT" in first.log_tail()

        gate.opened.set()  # the abandoned fetch may finish now; let the server settle
        settle(server)
        answered_before = answered(server)
        second = batch_process(
            "batch-resume", [*common, "--concurrency", "2", "--api-key", API_KEY], e2e_logs
        )
        assert finish(second) == 1, second.log_tail()  # the corrupt and the missing file

    lines = output_lines(out)
    assert out.read_bytes().startswith(before), "the first run's lines stay as they were"
    ids = [line["custom_id"] for line in lines]
    assert sorted(ids) == sorted(r["custom_id"] for r in requests)
    assert len(set(ids)) == len(ids) == 24
    by_id = {line["custom_id"]: line for line in lines}
    # Nothing of the first run was redone: the service answered exactly the lines the
    # second run wrote with an answer (the missing file never left the client).
    sent_again = [line for line in lines[7:] if line["response"] is not None]
    assert len(sent_again) == 16
    assert answered(server) - answered_before == len(sent_again)
    request_ids = [line["response"]["request_id"] for line in lines if line["response"]]
    assert len(set(request_ids)) == len(request_ids) == 23

    assert by_id["c-corrupt"]["response"]["status_code"] == 400
    assert by_id["c-corrupt"]["error"]["code"].startswith("media_")
    assert by_id["c-missing"]["response"] is None
    assert by_id["c-missing"]["error"]["code"] == "file_not_found"
    for cid, line in by_id.items():
        if cid in ("c-corrupt", "c-missing"):
            continue
        assert line["error"] is None and line["response"]["status_code"] == 200, line
        body = line["response"]["body"]
        assert body["choices"] if cid.startswith("c-") else body["data"]
    log = second.log_tail()
    assert "7 already in the output, 17 done now (15 succeeded, 2 failed)" in log
    assert "--retry-errors" in log


def test_429_is_retried_until_the_service_has_room(
    server: str, tmp_path: Path, e2e_logs: Path
) -> None:
    lines = [
        chat(f"c{i}", "Hi", part("image_url", str(MEDIA_DIR / "car_image.jpg"))) for i in range(3)
    ]
    lines.append(embed("e0", "a car", part("image_url", str(MEDIA_DIR / "car_image.jpg"))))
    batch_in = write_jsonl(tmp_path / "batch.jsonl", lines)
    out = tmp_path / "out.jsonl"
    busy_before = metric(server, "pandagpt_rejected_requests_total", reason="busy")
    with gated_media() as gate:
        # Fill every slot with a request whose media waits behind the gate.
        holders = [
            threading.Thread(target=_hold_a_slot, args=(server, gate.url), daemon=True)
            for _ in range(CAPACITY)
        ]
        for holder in holders:
            holder.start()
        deadline = time.monotonic() + 30
        while gate.arrivals < CAPACITY and time.monotonic() < deadline:
            time.sleep(0.02)
        assert gate.arrivals == CAPACITY, "the holding requests never reached the gate"
        proc = batch_process(
            "batch-429",
            [str(batch_in), "-o", str(out), "--url", server, "--api-key", API_KEY,
             "--concurrency", "3", "--max-attempts", "12", "--backoff", "0.2"],
            e2e_logs,
        )  # fmt: skip
        wait_for(
            lambda: metric(server, "pandagpt_rejected_requests_total", reason="busy") > busy_before,
            "429 from the full service",
            proc,
        )
        gate.opened.set()
        for holder in holders:
            holder.join(60)
        assert finish(proc) == 0, proc.log_tail()
    assert {line["custom_id"] for line in output_lines(out)} == {"c0", "c1", "c2", "e0"}
    assert all(line["error"] is None for line in output_lines(out))
    retries = re.search(r"(\d+) retries, ", proc.log_tail())
    assert retries is not None and int(retries.group(1)) >= 1, proc.log_tail()


def _hold_a_slot(server: str, gate_url: str) -> None:
    body = {"input": [part("image_url", f"{gate_url}/car_image.jpg")]}
    headers = {"Authorization": f"Bearer {API_KEY}"}
    httpx.post(f"{server}/v1/embeddings", json=body, headers=headers, timeout=90)
