"""Start and stop a real `pandagpt serve` process for the benchmark.

The service is measured the way users run it: its own process (and vLLM's
engine process), reached over HTTP. Settings go in as `PANDAGPT_*` variables,
the same path as a deployment; the child gets its own process group so that
stopping it also stops vLLM's children.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parents[1]


# Ports below the kernel's ephemeral range (net.ipv4.ip_local_port_range, 32768-60999 by
# default). A server binds its port only after its engine has started, seconds later; a
# port from bind(0) is an ephemeral one, which the kernel may hand meanwhile to any other
# socket (vLLM's zmq and gloo sockets, outgoing connections): "address already in use".
# Below the range only an explicit bind can take it.
_LOCAL_PORTS = range(20_000, 32_768)
_issued: set[int] = set()


def free_port() -> int:
    for port in random.sample(_LOCAL_PORTS, 256):
        if port in _issued:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _issued.add(port)
        return port
    raise RuntimeError("no free port below the ephemeral range")


def server_env(settings: Mapping[str, str]) -> dict[str, str]:
    """This environment without PANDAGPT_* leftovers, plus the benchmark's settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PANDAGPT_")}
    env.setdefault("VLLM_CPU_OMP_THREADS_BIND", "nobind")  # shared cores: no pinning
    env.update(settings)
    return env


@dataclass(frozen=True)
class Service:
    url: str  # base URL
    pid: int  # the `pandagpt serve` process (vLLM's processes are its descendants)


@contextlib.contextmanager
def running_service(
    model_dir: Path,
    log_path: Path,
    settings: Mapping[str, str] | None = None,
    timeout_s: float = 300.0,
    root: Path = REPO_ROOT,
) -> Iterator[str]:
    """`pandagpt serve --model-dir model_dir` on a free port; yields its base URL."""
    with started_service(model_dir, log_path, settings, timeout_s, root) as service:
        yield service.url


@contextlib.contextmanager
def started_service(
    model_dir: Path,
    log_path: Path,
    settings: Mapping[str, str] | None = None,
    timeout_s: float = 300.0,
    root: Path = REPO_ROOT,
) -> Iterator[Service]:
    """`running_service`, yielding the process id too (for its CPU figures).

    `root`: the source tree the service runs from (another checkout, e.g. the
    previous commit, for before/after figures from one benchmark run)."""
    port = free_port()
    env = server_env(
        {
            "PANDAGPT_HOST": "127.0.0.1",
            "PANDAGPT_DTYPE": "float32",  # the reference runs float32: same tokens
            "PANDAGPT_MAX_MODEL_LEN": "1024",
            "PANDAGPT_LOG_LEVEL": "warning",  # access logs would cost CPU during the load
            "PANDAGPT_ENABLE_PLAYGROUND": "false",
            **(settings or {}),
        }
    )
    argv = [sys.executable, "-m", "service.cli", "serve", "--model-dir", str(model_dir.resolve())]
    argv += ["--port", str(port)]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            argv, cwd=root, env={**env, "PYTHONPATH": _python_path(root, env)}, stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_ready(proc, f"{url}/health/ready", timeout_s, log_path)
            yield Service(url, proc.pid)
        finally:
            _stop(proc)


def _python_path(root: Path, env: Mapping[str, str]) -> str:
    """`root` first, so that its packages shadow this checkout's installed ones."""
    return os.pathsep.join(p for p in (str(root), env.get("PYTHONPATH", "")) if p)


def _wait_ready(proc: subprocess.Popen[bytes], url: str, timeout_s: float, log: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-4000:]
            raise RuntimeError(f"pandagpt serve exited ({proc.returncode}):\n{tail}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2.0).status_code == 200:
                return
        time.sleep(0.5)
    raise TimeoutError(f"pandagpt serve not ready after {timeout_s}s; log: {log}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM (the graceful path), then SIGKILL to the whole group."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(30)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)
