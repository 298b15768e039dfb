"""A real `pandagpt gateway` started with the environment and arguments the chart renders
(hosts swapped for loopback, the mounted key Secret for a temporary file): it boots in
`production`, answers the chart's probe paths, enforces the mounted keys, and picks up a
rotated key without a restart."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from harness.processes import PANDAGPT, Process, base_env, free_port, wait_http_ok
from tests.deploy.conftest import find


@pytest.fixture
def gateway(render, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    (deployment,) = find(render(), "Deployment", "gateway")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    key_file = tmp_path / Path(env["PANDAGPT_API_KEY_FILE"]).name
    key_file.write_text("sk-first-key-0123456789\n")
    env["PANDAGPT_API_KEY_FILE"] = str(key_file)
    env["PANDAGPT_WORKER_URLS"] = f"http://127.0.0.1:{free_port()}"  # no worker there
    env["PANDAGPT_REDIS_URL"] = "redis://127.0.0.1:6379/0"
    assert env["PANDAGPT_ENVIRONMENT"] == "production"
    args = list(container["args"])
    port = free_port()
    args[args.index("--port") + 1] = str(port)
    args[args.index("--host") + 1] = "127.0.0.1"
    proc = Process("chart-gateway", [*PANDAGPT, *args], base_env(**env), tmp_path)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http_ok(proc, url + container["livenessProbe"]["httpGet"]["path"], timeout=60)
        yield url, key_file
    finally:
        proc.stop(timeout=10)


def test_gateway_boots_from_the_chart_environment(render, gateway: tuple[str, Path]) -> None:
    url, key_file = gateway
    (deployment,) = find(render(), "Deployment", "gateway")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    ready = httpx.get(url + container["readinessProbe"]["httpGet"]["path"], timeout=10)
    assert ready.status_code == 503  # not ready without a worker: kept out of the Service
    assert httpx.get(url + "/metrics", timeout=5).status_code == 200

    assert httpx.get(url + "/v1/models", timeout=10).status_code == 401
    first = {"Authorization": "Bearer sk-first-key-0123456789"}
    assert httpx.get(url + "/v1/models", headers=first, timeout=10).status_code != 401

    # A Secret update replaces the mounted file; the gateway re-reads it, no restart.
    key_file.write_text("sk-second-key-0123456789\n")
    second = {"Authorization": "Bearer sk-second-key-0123456789"}
    deadline = time.monotonic() + 10
    while httpx.get(url + "/v1/models", headers=second, timeout=10).status_code == 401:
        assert time.monotonic() < deadline, "rotated key not picked up"
        time.sleep(0.5)
    assert httpx.get(url + "/v1/models", headers=first, timeout=10).status_code == 401
