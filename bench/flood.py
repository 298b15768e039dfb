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
cost far more to decode than to send (``harness.bombs``) go out at once, and an
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
import contextlib
import json
import random
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx

from bench.cpu import process_tree_cpu
from harness.bomb_requests import ask, bomb_parts, photo_part
from harness.deployments import Front, serve_or_split
from harness.probes import HealthWatch
from harness.proc_figures import proc_status_kib
from harness.processes import make_demo_weights


def ensure_demo_weights(root: Path, logs: Path) -> Path:
    model = root / "model"
    if not (model / "pandagpt.json").exists():
        make_demo_weights(root, logs)
    return model


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


@contextlib.contextmanager
def started_deployment(
    args: argparse.Namespace, logs: Path, model_dir: Path, env: dict[str, str]
) -> Iterator[Front]:
    """`serve`, or split mode: one gateway (the front) and one worker."""
    token = {"PANDAGPT_WORKER_TOKEN": "flood-token-0123456789"} if args.mode == "split" else {}
    # no feature cache in split mode either: every request must reach the decoder
    with serve_or_split(args.mode, model_dir, logs, {**env, **token}, cache=False) as front:
        yield front


def run(args: argparse.Namespace) -> dict[str, object]:
    logs = Path(tempfile.mkdtemp(prefix="flood-"))
    model_dir = ensure_demo_weights(Path(args.demo_dir), logs)
    env = {
        "PANDAGPT_ENFORCE_EAGER": "true",
        "PANDAGPT_LOG_LEVEL": "warning",
        "PANDAGPT_MAX_BODY_BYTES": str(int((args.image_mb * 1.4 + 2) * 2**20)),
        "PANDAGPT_MAX_MEDIA_BYTES": str(int((args.image_mb + 1) * 2**20)),
        "PANDAGPT_REQUEST_TIMEOUT_S": "600",
        **dict(item.split("=", 1) for item in args.env),
    }
    with started_deployment(args, logs, model_dir, env) as front:
        model = httpx.get(f"{front.url}/v1/models", timeout=30).json()["data"][0]["id"]
        if args.bombs:
            return {"mode": args.mode, "bombs": args.bombs, **run_bombs(args, front, model)}
        body = flood_body(model, args.image_mb)
        before = {n: proc_status_kib(pid, "VmRSS") for n, pid in front.pids.items()}
        watch = HealthWatch(front.url)
        watcher = threading.Thread(target=watch.run, daemon=True)
        watcher.start()
        print(f"flooding {front.url}: {args.requests} x {len(body) / 2**20:.1f} MiB", flush=True)
        statuses = asyncio.run(send_all(front.url, body, args.requests))
        watch.stop.set()
        watcher.join()
        time.sleep(2)  # let the allocator give back what it will
        peak = {n: proc_status_kib(pid, "VmHWM") for n, pid in front.pids.items()}
        after = {n: proc_status_kib(pid, "VmRSS") for n, pid in front.pids.items()}
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
            "event_loop_lag_max_s": {n: loop_lag(url) for n, url in front.urls.items()},
            "valid_request_after": valid_request(front.url, model),
        }
        return result


def valid_request(url: str, model: str) -> int:
    return httpx.post(
        f"{url}/v1/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2},
        timeout=120,
    ).status_code


def run_bombs(args: argparse.Namespace, front: Front, model: str) -> dict[str, object]:
    parts = bomb_parts(args.bombs, args.requests + 1)

    async def measure() -> dict[str, object]:
        limits = httpx.Limits(max_connections=args.requests + 4)
        async with httpx.AsyncClient(base_url=front.url, timeout=600, limits=limits) as client:
            await ask(client, model, parts[-1])  # first-use costs are not the flood's
            alone = [(await ask(client, model, photo_part(seed)))[1] for seed in range(3)]
            for pid in front.pids.values():
                Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM := VmRSS
            before = {n: proc_status_kib(pid, "VmRSS") for n, pid in front.pids.items()}
            cpu_before = sum(sum(process_tree_cpu(pid).values()) for pid in front.pids.values())

            async def image_meanwhile() -> tuple[str, float]:
                await asyncio.sleep(0.3)
                return await ask(client, model, photo_part(99))

            start = time.perf_counter()
            image_task = asyncio.create_task(image_meanwhile())
            answers = await asyncio.gather(*(ask(client, model, p) for p in parts[:-1]))
            image = await image_task
            wall = time.perf_counter() - start
            cpu = (
                sum(sum(process_tree_cpu(pid).values()) for pid in front.pids.values()) - cpu_before
            )
            peak = {n: proc_status_kib(pid, "VmHWM") for n, pid in front.pids.items()}
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
