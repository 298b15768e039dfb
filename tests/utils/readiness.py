"""Reading a running server's state over HTTP: readiness counts and /metrics samples."""

from __future__ import annotations

import time

import httpx

from tests.utils.processes import metric_value


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


def metric(base_url: str, name: str, **labels: str) -> float:
    return metric_value(metrics_text(base_url), name, **labels)
