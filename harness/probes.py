"""Reading a running server's state over HTTP: readiness counts and /metrics samples."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import httpx


def readiness(base_url: str) -> dict[str, object]:
    response = httpx.get(f"{base_url}/health/ready", timeout=10)
    body: dict[str, object] = response.json()
    return body


def engine_running(base_url: str) -> int:
    """Requests the engine is working on, as the worker's readiness reports them."""
    return int(readiness(base_url)["running"])  # type: ignore[call-overload]


def wait_until_idle(base_url: str, timeout_s: float = 10.0) -> int:
    """Polls readiness until the engine runs nothing or `timeout_s` passes → running then."""
    deadline = time.monotonic() + timeout_s
    while (running := engine_running(base_url)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return running


def metrics_text(base_url: str) -> str:
    response = httpx.get(f"{base_url}/metrics", timeout=10)
    response.raise_for_status()
    return response.text


def metric_value(metrics_text: str, name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels` (0 when absent)."""
    total = 0.0
    for line in metrics_text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        head, _, value = line.rpartition(" ")
        metric_name, _, label_text = head.partition("{")
        if metric_name != name:
            continue
        if all(f'{k}="{v}"' in label_text for k, v in labels.items()):
            total += float(value)
    return total


def metric(base_url: str, name: str, **labels: str) -> float:
    return metric_value(metrics_text(base_url), name, **labels)


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
