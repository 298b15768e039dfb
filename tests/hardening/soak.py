"""Soak: mixed concurrent load on split mode (gateway + 2 workers + Redis), then checks.

    python -m tests.hardening.soak --minutes 30 [--clients 16] [--model-dir DIR] [--out x.json]

Without --model-dir it makes the small demo preset (`pandagpt demo-weights --size small`).
Clients loop over a mix (text, streamed text, cached and fresh images, audio, embeddings,
model list) until the time is up. During a warm-up (10% of the run, at least 45 s) it
samples every process every 5 s; the baseline is each process's highest RSS in the warm-up
(the plateau its allocator settles on) and its open fds at the end of it. At the end it
checks: zero errors, RSS of each process grew < 10% over the baseline, fd counts did not
grow (a small slack for keep-alive sockets), and every worker's running and waiting
counts are back at 0.
`run_soak` is the same load against a deployment the caller owns (the suite's 2-minute run).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import random
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: make `tests.*` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import httpx

from harness.deployments import Split, split_deployment
from harness.probes import readiness
from harness.proc_figures import children, fd_count, rss_bytes
from harness.processes import make_demo_weights
from tests.utils.media import data_url
from tests.utils.media_bytes import png

RSS_GROWTH_LIMIT = 0.10
FD_SLACK = 8  # pooled keep-alive sockets may differ by a few between two samples
KINDS = ("text", "stream", "image_cached", "image_fresh", "audio", "embed", "models")
WEIGHTS = (4, 4, 3, 1, 1, 1, 1)


@dataclass
class ProcSample:
    rss: int
    fds: int


@dataclass
class SoakReport:
    minutes: float
    clients: int
    requests: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    baseline: dict[str, ProcSample] = field(default_factory=dict)
    final: dict[str, ProcSample] = field(default_factory=dict)
    rss_series: list[dict[str, float]] = field(default_factory=list)  # t + MiB per process
    running_at_end: dict[str, int] = field(default_factory=dict)
    latency_p50_s: float = 0.0
    latency_p99_s: float = 0.0

    @property
    def total(self) -> int:
        return sum(self.requests.values())

    def rss_growth(self) -> dict[str, float]:
        return {
            name: (self.final[name].rss - base.rss) / base.rss
            for name, base in self.baseline.items()
            if name in self.final and base.rss > 0
        }

    def fd_growth(self) -> dict[str, int]:
        return {n: self.final[n].fds - b.fds for n, b in self.baseline.items() if n in self.final}

    def failures(self) -> list[str]:
        problems: list[str] = []
        if self.errors:
            problems.append(f"{len(self.errors)} errors, first: {self.errors[:3]}")
        for name, growth in self.rss_growth().items():
            if growth >= RSS_GROWTH_LIMIT:
                problems.append(f"{name}: RSS grew {growth:.1%} after warm-up")
        for name, grown in self.fd_growth().items():
            if grown > FD_SLACK:
                problems.append(f"{name}: {grown} more open fds than after warm-up")
        for name, running in self.running_at_end.items():
            if running:
                problems.append(f"{name}: {running} requests still running/waiting at the end")
        return problems

    def summary(self) -> dict[str, Any]:
        return {
            "minutes": self.minutes,
            "clients": self.clients,
            "requests": self.total,
            "by_kind": self.requests,
            "errors": len(self.errors),
            "latency_p50_s": round(self.latency_p50_s, 3),
            "latency_p99_s": round(self.latency_p99_s, 3),
            "rss_mib_baseline": {n: round(s.rss / 2**20, 1) for n, s in self.baseline.items()},
            "rss_mib_final": {n: round(s.rss / 2**20, 1) for n, s in self.final.items()},
            "rss_growth_pct": {n: round(g * 100, 2) for n, g in self.rss_growth().items()},
            "fds_baseline": {n: s.fds for n, s in self.baseline.items()},
            "fds_final": {n: s.fds for n, s in self.final.items()},
            "running_at_end": self.running_at_end,
            "failures": self.failures(),
        }


def process_pids(split: Split) -> dict[str, int]:
    """Every process of the deployment: gateway, workers and their engine children."""
    pids: dict[str, int] = {}
    for name, pid in split.pids().items():
        if name.startswith("redis"):
            continue
        pids[name] = pid
        for i, child in enumerate(children(pid)):
            pids[f"{name}/child{i}"] = child
    return pids


def sample(pids: dict[str, int]) -> dict[str, ProcSample]:
    return {name: ProcSample(rss_bytes(pid), fd_count(pid)) for name, pid in pids.items()}


class Load:
    """16 (or N) clients looping over the request mix until `stop_at`."""

    def __init__(self, base_url: str, model: str, report: SoakReport, seed: int = 0) -> None:
        self.base = base_url
        self.model = model
        self.report = report
        self.rng = random.Random(seed)
        self.latencies: list[float] = []
        self.images = [data_url(n) for n in ("bird_image.jpg", "car_image.jpg", "dog_image.jpg")]
        self.audio = data_url("bird_audio.wav")
        self.fresh = 0

    def _chat(self, content: Any, stream: bool = False) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": "user", "content": content}],
            "max_tokens": 12,
        }
        if stream:
            body["stream"] = True
        return body

    async def one(self, client: httpx.AsyncClient, kind: str) -> None:
        url = f"{self.base}/v1/chat/completions"
        if kind == "models":
            response = await client.get(f"{self.base}/v1/models")
            response.raise_for_status()
            return
        if kind == "embed":
            body: dict[str, Any] = {
                "model": self.model,
                "input": ["a bird", {"type": "image_url", "image_url": {"url": self.images[0]}}],
            }
            response = await client.post(f"{self.base}/v1/embeddings", json=body)
            response.raise_for_status()
            return
        if kind == "stream":
            async with client.stream("POST", url, json=self._chat("Tell me", True)) as response:
                response.raise_for_status()
                text = "".join([line async for line in response.aiter_lines()])
            if '"error"' in text or "data: [DONE]" not in text:
                raise RuntimeError(f"bad stream: {text[-200:]}")
            return
        if kind == "text":
            content: Any = f"Hello number {self.rng.randrange(1000)}"
        elif kind == "image_cached":
            image = self.rng.choice(self.images)
            content = [{"type": "text", "text": "What?"}, _image(image)]
        elif kind == "image_fresh":
            self.fresh += 1
            # distinct sizes (so distinct bytes: cache misses) within the 20:1 aspect cap
            raw = png(16 + self.fresh % 100, 16 + (self.fresh // 100) % 100)
            image = f"data:image/png;base64,{base64.b64encode(raw).decode()}"
            content = [{"type": "text", "text": "What?"}, _image(image)]
        else:
            content = [
                {"type": "text", "text": "Hear?"},
                {"type": "audio_url", "audio_url": {"url": self.audio}},
            ]
        response = await client.post(url, json=self._chat(content))
        response.raise_for_status()
        if not response.json()["choices"]:
            raise RuntimeError("no choices")

    async def client_loop(self, stop_at: float) -> None:
        async with httpx.AsyncClient(timeout=120.0, trust_env=False) as client:
            while time.monotonic() < stop_at:
                kind = self.rng.choices(KINDS, WEIGHTS)[0]
                start = time.perf_counter()
                try:
                    await self.one(client, kind)
                except Exception as exc:
                    detail = (
                        exc.response.text[:200] if isinstance(exc, httpx.HTTPStatusError) else ""
                    )
                    self.report.errors.append(f"{kind}: {exc!r} {detail}")
                self.latencies.append(time.perf_counter() - start)
                self.report.requests[kind] = self.report.requests.get(kind, 0) + 1


def _image(url: str) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": url}}


async def _run(split: Split, minutes: float, clients: int, log: Any) -> SoakReport:
    report = SoakReport(minutes=minutes, clients=clients)
    async with httpx.AsyncClient(trust_env=False) as probe:
        model = (await probe.get(f"{split.gateway}/v1/models")).json()["data"][0]["id"]
    load = Load(split.gateway, model, report)
    total_s = minutes * 60
    warmup_s = max(45.0, 0.1 * total_s)
    start = time.monotonic()
    stop_at = start + total_s
    tasks = [asyncio.create_task(load.client_loop(stop_at)) for _ in range(clients)]
    pids = process_pids(split)
    report.baseline = await _warm_up_plateau(pids, start + warmup_s)
    log(f"baseline after {warmup_s:.0f}s: {report.total} requests")
    while time.monotonic() < stop_at:
        await asyncio.sleep(min(30.0, max(0.0, stop_at - time.monotonic())))
        point: dict[str, float] = {"t": round(time.monotonic() - start, 1)}
        point.update({n: round(rss_bytes(p) / 2**20, 1) for n, p in pids.items()})
        report.rss_series.append(point)
        log(f"t={point['t']}s requests={report.total} errors={len(report.errors)} rss={point}")
    await asyncio.gather(*tasks)
    await asyncio.sleep(5.0)  # idle keep-alive sockets close; aborted requests settle
    report.final = sample(pids)
    report.running_at_end = {}
    for name, url in split.workers.items():
        state = readiness(url)
        report.running_at_end[name] = int(state["running"]) + int(state["waiting"])  # type: ignore[call-overload]
    ordered = sorted(load.latencies)
    if ordered:
        report.latency_p50_s = ordered[len(ordered) // 2]
        report.latency_p99_s = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return report


async def _warm_up_plateau(pids: dict[str, int], until: float) -> dict[str, ProcSample]:
    """Sample every 5 s until `until`: each process's highest RSS (the warm-up plateau:
    allocators keep what the busiest moment took) and its fd count at the end."""
    peak: dict[str, int] = {}
    last: dict[str, ProcSample] = {}
    while True:
        last = sample(pids)
        for name, now in last.items():
            peak[name] = max(peak.get(name, 0), now.rss)
        if time.monotonic() >= until:
            break
        await asyncio.sleep(min(5.0, max(0.0, until - time.monotonic())))
    return {name: ProcSample(peak[name], s.fds) for name, s in last.items()}


def run_soak(split: Split, minutes: float, clients: int = 16, log: Any = print) -> SoakReport:
    """The soak against a running split deployment; the caller checks `failures()`."""
    return asyncio.run(_run(split, minutes, clients, log))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=2.0)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--model-dir", type=Path, default=None)
    parser.add_argument("--log-dir", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None, help="write the summary JSON here")
    args = parser.parse_args(argv)
    log_dir = args.log_dir or Path(tempfile.mkdtemp(prefix="pandagpt-soak-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    model_dir = args.model_dir or make_demo_weights(log_dir / "weights", log_dir, "small")

    def log(message: str) -> None:
        print(f"[soak {time.strftime('%H:%M:%S')}] {message}", flush=True)

    log(f"logs in {log_dir}")
    with split_deployment(model_dir, log_dir) as split:
        log(f"split mode up: gateway {split.gateway}, workers {list(split.workers.values())}")
        report = run_soak(split, args.minutes, args.clients, log)
    summary = report.summary()
    summary["rss_series"] = report.rss_series
    text = json.dumps(summary, indent=2)
    print(text, flush=True)
    if args.out is not None:
        args.out.write_text(text)
    return 1 if report.failures() else 0


if __name__ == "__main__":
    raise SystemExit(main())
