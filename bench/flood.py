"""Large media under load: what a flood of big bodies costs the service in memory.

Starts the service (all-in-one `pandagpt serve`, or split: one gateway and one
worker) on demo weights, sends N concurrent chat requests whose body carries one
large image as a `data:` URL (a JPEG header followed by noise, so each should end
as a 400, or a 429 when the memory budget is spent), and reports per process:
resident memory before, the peak (VmHWM) and after; the answers by status; the
slowest `/health/live` answer during the flood; the largest event-loop stall the
service itself measured (`pandagpt_event_loop_lag_max_seconds`, when exposed); and
the peak bytes held per request byte.

    python -m bench.flood --mode serve --requests 40 --image-mb 30
    python -m bench.flood --mode split --requests 40 --image-mb 30

Decode-bomb mode (``--bombs audio|video|codec``): N distinct small files that
cost far more to decode than to send (``bench.bombs``) go out at once, and an
ordinary image request (a fresh 640×480 photo) is sent 0.3 s in. Reported
besides the above: the answers, each bomb's answer time, the CPU seconds the
server's processes spent, and the image's latency among the bombs against its
median alone (three requests before the flood).

    python -m bench.flood --mode serve --bombs audio --requests 8

Figures are printed, never asserted; the hardening tests assert the bounds.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench import bombs as bomb_media
from bench.cpu import process_tree_cpu
from bench.server import free_port

PANDAGPT = [sys.executable, "-m", "service.cli"]


def rss_kib(pid: int, field_name: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    return 0


@dataclass
class Server:
    name: str
    popen: subprocess.Popen[bytes]
    url: str
    log: Path

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(60)
            except subprocess.TimeoutExpired:
                self.popen.kill()


def start(name: str, argv: list[str], env: dict[str, str], port: int, logs: Path) -> Server:
    log = logs / f"{name}.log"
    popen = subprocess.Popen(
        [*argv, "--port", str(port), "--host", "127.0.0.1"],
        env={**os.environ, **env},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    return Server(name, popen, f"http://127.0.0.1:{port}", log)


def wait_ready(server: Server, timeout_s: float = 300.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.popen.poll() is not None:
            raise RuntimeError(f"{server.name} exited:\n{server.log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{server.url}/health/ready", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{server.name} not ready in {timeout_s}s")


def ensure_demo_weights(root: Path) -> Path:
    model = root / "model"
    if not (model / "pandagpt.json").exists():
        subprocess.run([*PANDAGPT, "demo-weights", str(root)], check=True)
    return model


@dataclass
class HealthWatch:
    """Polls /health/live from its own thread, timing every answer."""

    url: str
    slowest_s: float = 0.0
    failures: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        with httpx.Client(timeout=30) as client:
            while not self.stop.is_set():
                start = time.perf_counter()
                try:
                    client.get(f"{self.url}/health/live").raise_for_status()
                except httpx.HTTPError as exc:
                    self.failures.append(repr(exc))
                self.slowest_s = max(self.slowest_s, time.perf_counter() - start)
                self.stop.wait(0.1)


def flood_body(model: str, image_mb: float) -> bytes:
    rng = random.Random(0)
    data = b"\xff\xd8\xff\xe0" + rng.randbytes(int(image_mb * 2**20))
    url = "data:image/jpeg;base64," + base64.b64encode(data).decode()
    part = {"type": "image_url", "image_url": {"url": url}}
    message = {"role": "user", "content": [{"type": "text", "text": "What is this?"}, part]}
    return json.dumps({"model": model, "messages": [message], "max_tokens": 1}).encode()


async def send_all(url: str, body: bytes, n: int) -> Counter[int | str]:
    limits = httpx.Limits(max_connections=n)
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=limits) as client:

        async def one() -> int | str:
            try:
                response = await client.post(
                    "/v1/chat/completions",
                    content=body,
                    headers={"Content-Type": "application/json"},
                )
            except httpx.HTTPError as exc:
                return type(exc).__name__  # no HTTP answer
            return response.status_code

        return Counter(await asyncio.gather(*(one() for _ in range(n))))


def loop_lag(url: str) -> float | None:
    text = httpx.get(f"{url}/metrics", timeout=30).text
    for line in text.splitlines():
        if line.startswith("pandagpt_event_loop_lag_max_seconds "):
            return float(line.split()[1])
    return None


def start_deployment(args: argparse.Namespace, logs: Path, env: dict[str, str]) -> list[Server]:
    """The front server first (serve, or the gateway), then the worker in split mode."""
    servers: list[Server] = []
    if args.mode == "serve":
        servers.append(start("serve", [*PANDAGPT, "serve"], env, free_port(), logs))
    else:
        token = {"PANDAGPT_WORKER_TOKEN": "flood-token-0123456789"}
        worker = start("worker", [*PANDAGPT, "worker"], {**env, **token}, free_port(), logs)
        servers.append(worker)
        wait_ready(worker)
        gateway_env = {**env, **token, "PANDAGPT_WORKER_URLS": worker.url}
        servers.insert(0, start("gateway", [*PANDAGPT, "gateway"], gateway_env, free_port(), logs))
    for server in servers:
        wait_ready(server)
    return servers


def run(args: argparse.Namespace) -> dict[str, object]:
    logs = Path(tempfile.mkdtemp(prefix="flood-"))
    model_dir = ensure_demo_weights(Path(args.demo_dir))
    env = {
        "PANDAGPT_MODEL_DIR": str(model_dir),
        "PANDAGPT_ENFORCE_EAGER": "true",
        "PANDAGPT_LOG_LEVEL": "warning",
        "PANDAGPT_MAX_BODY_BYTES": str(int((args.image_mb * 1.4 + 2) * 2**20)),
        "PANDAGPT_MAX_MEDIA_BYTES": str(int((args.image_mb + 1) * 2**20)),
        "PANDAGPT_REQUEST_TIMEOUT_S": "600",
        **dict(item.split("=", 1) for item in args.env),
    }
    servers = start_deployment(args, logs, env)
    try:
        front = servers[0]
        model = httpx.get(f"{front.url}/v1/models", timeout=30).json()["data"][0]["id"]
        if args.bombs:
            return {"mode": args.mode, "bombs": args.bombs, **run_bombs(args, servers, model)}
        body = flood_body(model, args.image_mb)
        before = {s.name: rss_kib(s.popen.pid, "VmRSS") for s in servers}
        watch = HealthWatch(front.url)
        watcher = threading.Thread(target=watch.run, daemon=True)
        watcher.start()
        print(f"flooding {front.url}: {args.requests} x {len(body) / 2**20:.1f} MiB", flush=True)
        statuses = asyncio.run(send_all(front.url, body, args.requests))
        watch.stop.set()
        watcher.join()
        time.sleep(2)  # let the allocator give back what it will
        peak = {s.name: rss_kib(s.popen.pid, "VmHWM") for s in servers}
        after = {s.name: rss_kib(s.popen.pid, "VmRSS") for s in servers}
        in_flight_bytes = len(body) * args.requests
        result: dict[str, object] = {
            "mode": args.mode,
            "requests": args.requests,
            "body_mib": round(len(body) / 2**20, 1),
            "statuses": dict(sorted(statuses.items(), key=str)),
            "rss_before_mib": {k: round(v / 1024) for k, v in before.items()},
            "rss_peak_mib": {k: round(v / 1024) for k, v in peak.items()},
            "rss_after_mib": {k: round(v / 1024) for k, v in after.items()},
            "peak_growth_per_offered_byte": {
                k: round((peak[k] - before[k]) * 1024 / in_flight_bytes, 2) for k in peak
            },
            "slowest_health_s": round(watch.slowest_s, 3),
            "health_failures": len(watch.failures),
            "event_loop_lag_max_s": {s.name: loop_lag(s.url) for s in servers},
            "valid_request_after": valid_request(front.url, model),
        }
        return result
    finally:
        for server in servers:
            server.stop()


def valid_request(url: str, model: str) -> int:
    return httpx.post(
        f"{url}/v1/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2},
        timeout=120,
    ).status_code


def bomb_parts(kind: str, count: int) -> list[dict[str, object]]:
    """`count` distinct bombs of `kind` as chat content parts (distinct bytes: no cache hit)."""
    print(f"making {count} {kind} bombs", flush=True)
    if kind == "audio":
        audio = bomb_media.silent_audio()
        return [
            {"type": "input_audio", "input_audio": {"data": _b64(data), "format": "flac"}}
            for data in (bomb_media.salted_flac(audio, salt) for salt in range(count))
        ]
    make = bomb_media.long_gop_video if kind == "video" else bomb_media.jpeg2000_video
    media_type = "video/mp4" if kind == "video" else "video/x-matroska"
    return [
        {
            "type": "video_url",
            "video_url": {"url": f"data:{media_type};base64,{_b64(make(salt=i))}"},
        }
        for i in range(count)
    ]


def photo_part(seed: int) -> dict[str, object]:
    """A fresh 640×480 JPEG of noise (a feature-cache miss every time)."""
    import io

    import numpy as np
    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=85)
    return {
        "type": "image_url",
        "image_url": {"url": f"data:image/jpeg;base64,{_b64(buffer.getvalue())}"},
    }


async def ask(client: httpx.AsyncClient, model: str, part: dict[str, object]) -> tuple[str, float]:
    """("status code", seconds) of one chat request carrying `part`."""
    content = [{"type": "text", "text": "What is this?"}, part]
    body = {"model": model, "messages": [{"role": "user", "content": content}], "max_tokens": 1}
    start = time.perf_counter()
    try:
        response = await client.post("/v1/chat/completions", json=body)
    except httpx.HTTPError as exc:
        return type(exc).__name__, time.perf_counter() - start
    answer = str(response.status_code)
    if response.status_code != 200:
        answer += " " + str(response.json()["error"].get("code"))
    return answer, time.perf_counter() - start


def run_bombs(args: argparse.Namespace, servers: list[Server], model: str) -> dict[str, object]:
    front = servers[0]
    parts = bomb_parts(args.bombs, args.requests + 1)

    async def measure() -> dict[str, object]:
        limits = httpx.Limits(max_connections=args.requests + 4)
        async with httpx.AsyncClient(base_url=front.url, timeout=600, limits=limits) as client:
            await ask(client, model, parts[-1])  # first-use costs are not the flood's
            alone = [(await ask(client, model, photo_part(seed)))[1] for seed in range(3)]
            for server in servers:
                Path(f"/proc/{server.popen.pid}/clear_refs").write_text("5")  # VmHWM := VmRSS
            before = {s.name: rss_kib(s.popen.pid, "VmRSS") for s in servers}
            cpu_before = sum(sum(process_tree_cpu(s.popen.pid).values()) for s in servers)

            async def image_meanwhile() -> tuple[str, float]:
                await asyncio.sleep(0.3)
                return await ask(client, model, photo_part(99))

            start = time.perf_counter()
            image_task = asyncio.create_task(image_meanwhile())
            answers = await asyncio.gather(*(ask(client, model, p) for p in parts[:-1]))
            image = await image_task
            wall = time.perf_counter() - start
            cpu = sum(sum(process_tree_cpu(s.popen.pid).values()) for s in servers) - cpu_before
            peak = {s.name: rss_kib(s.popen.pid, "VmHWM") for s in servers}
            times = sorted(seconds for _, seconds in answers)
            alone_s = sorted(alone)[1]
            return {
                "requests": args.requests,
                "bomb_kib": round(len(json.dumps(parts[0])) / 1024),
                "answers": dict(Counter(status for status, _ in answers)),
                "answer_s": {"min": round(times[0], 3), "max": round(times[-1], 3)},
                "flood_wall_s": round(wall, 2),
                "server_cpu_s": round(cpu, 2),
                "rss_growth_mib": {k: round((peak[k] - before[k]) / 1024) for k in peak},
                "image_alone_s": round(alone_s, 3),
                "image_among_bombs_s": round(image[1], 3),
                "image_ratio": round(image[1] / alone_s, 2),
                "image_answer": image[0],
            }

    watch = HealthWatch(front.url)
    watcher = threading.Thread(target=watch.run, daemon=True)
    watcher.start()
    try:
        figures = asyncio.run(measure())
    finally:
        watch.stop.set()
        watcher.join()
    return {
        **figures,
        "slowest_health_s": round(watch.slowest_s, 3),
        "health_failures": len(watch.failures),
        "valid_request_after": valid_request(front.url, model),
    }


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.flood", description=__doc__)
    parser.add_argument("--mode", choices=["serve", "split"], default="serve")
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--image-mb", type=float, default=30.0)
    parser.add_argument("--demo-dir", default=".cache/demo-weights")
    parser.add_argument("--env", action="append", default=[], help="extra NAME=VALUE")
    parser.add_argument(
        "--bombs",
        choices=["audio", "video", "codec"],
        help="decode-bomb mode: --requests distinct bombs of this class at once",
    )
    args = parser.parse_args(argv)
    print(json.dumps(run(args), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
