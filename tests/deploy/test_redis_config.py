"""The bundled Redis runs exactly the command the chart renders (port swapped): a cache
with `maxmemory` and `allkeys-lru`, no snapshots, no AOF, and the password from the env."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest
import redis

from harness.processes import free_port
from tests.deploy.conftest import CHART, find, profile_args

pytestmark = pytest.mark.skipif(
    shutil.which("redis-server") is None, reason="redis-server not installed"
)


def test_bundled_redis_is_an_lru_cache_with_a_password(render, tmp_path: Path) -> None:
    manifests = render(*profile_args(CHART / "ci" / "ingress-monitoring-netpol-values.yaml"))
    (statefulset,) = find(manifests, "StatefulSet", "redis")
    (container,) = statefulset["spec"]["template"]["spec"]["containers"]
    shell, flag, script = container["command"]
    assert (shell, flag) == ("/bin/sh", "-c")
    port = free_port()
    script = script.replace("--port 6379", f"--port {port} --bind 127.0.0.1")
    script = script.replace("--dir /data", f"--dir {tmp_path}")
    proc = subprocess.Popen(
        [shell, flag, script],
        env={"PATH": "/usr/bin:/bin:/usr/local/bin", "REDIS_PASSWORD": "pw-0123456789"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        client = redis.Redis(port=port, password="pw-0123456789", socket_timeout=2)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                assert time.monotonic() < deadline and proc.poll() is None, "redis did not start"
                time.sleep(0.1)
        config = client.config_get("*")
        assert config["maxmemory-policy"] == "allkeys-lru"
        assert int(config["maxmemory"]) == 1024**3  # "1gb"
        assert config["save"] == "" and config["appendonly"] == "no"
        anonymous = redis.Redis(port=port, socket_timeout=2)
        with pytest.raises(redis.AuthenticationError):
            anonymous.set("k", "v")
        anonymous.close()
        client.close()
    finally:
        proc.terminate()
        proc.wait(10)
