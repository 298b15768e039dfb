"""Real processes for end-to-end tests: `pandagpt` servers, a throwaway Redis, a media server.

Every process logs to a file; a failure to start raises with the log's tail so
the test report shows why. Stopping sends SIGTERM (the graceful path the
service must honour) and only then SIGKILL.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import httpx

from bench.server import free_port as free_port  # (re-exported for the tests)

REPO_ROOT = Path(__file__).resolve().parents[2]
PANDAGPT = [sys.executable, "-m", "service.cli"]


def base_env(**extra: str) -> dict[str, str]:
    """The environment for a child: this one without PANDAGPT_* leftovers, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PANDAGPT_")}
    env.setdefault("VLLM_CPU_OMP_THREADS_BIND", "nobind")  # 2 shared cores: no pinning
    env.update(extra)
    return env


class Process:
    """One child process with its log; `stop()` is SIGTERM, then SIGKILL."""

    def __init__(self, name: str, argv: Sequence[str], env: Mapping[str, str], log_dir: Path):
        self.name = name
        self.argv = list(argv)
        self.log_path = log_dir / f"{name}.log"
        self._log = self.log_path.open("ab")
        self.popen = subprocess.Popen(
            self.argv,
            cwd=REPO_ROOT,
            env=dict(env),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: vLLM's children go with it
        )

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, chars: int = 6000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM the process; SIGKILL its whole group if it outlives `timeout`."""
        if self.alive:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._kill_group()
        self._log.close()
        return self.popen.returncode

    def kill(self) -> None:
        self._kill_group()
        self.popen.wait(10)

    def _kill_group(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)


def wait_http_ok(proc: Process, url: str, timeout: float) -> None:
    """Poll `url` until it answers 200; raise with the log tail if the process dies first."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if not proc.alive:
            raise RuntimeError(f"{proc.name} exited ({proc.popen.returncode}):\n{proc.log_tail()}")
        try:
            response = httpx.get(url, timeout=2.0)
            if response.status_code == 200:
                return
            last = f"{response.status_code} {response.text[:200]}"
        except httpx.HTTPError as exc:
            last = repr(exc)
        time.sleep(0.5)
    raise TimeoutError(
        f"{proc.name}: {url} not ready after {timeout}s ({last}):\n{proc.log_tail()}"
    )


def start_pandagpt(
    name: str,
    args: Sequence[str],
    *,
    port: int,
    env: Mapping[str, str],
    log_dir: Path,
    timeout: float = 240.0,
) -> Process:
    """Start `pandagpt <args> --port <port>` and wait for /health/ready."""
    proc = Process(name, [*PANDAGPT, *args, "--port", str(port)], env, log_dir)
    try:
        wait_http_ok(proc, f"http://127.0.0.1:{port}/health/ready", timeout)
    except BaseException:
        proc.stop(timeout=5)
        raise
    return proc


def make_demo_weights(target: Path, log_dir: Path) -> Path:
    """`pandagpt demo-weights target`; returns the converted model dir."""
    proc = Process("demo-weights", [*PANDAGPT, "demo-weights", str(target)], base_env(), log_dir)
    if proc.popen.wait(600) != 0:
        raise RuntimeError(f"demo-weights failed:\n{proc.log_tail()}")
    proc.stop()
    return target / "model"


class RedisServer:
    """A throwaway `redis-server` on its own port; never the machine's shared one."""

    def __init__(self, port: int, log_dir: Path) -> None:
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self._log_dir = log_dir
        self.proc: Process | None = None

    def start(self) -> None:
        argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
        argv += ["--save", "", "--appendonly", "no"]
        self.proc = Process(f"redis-{self.port}", argv, base_env(), self._log_dir)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port)):
                return
            time.sleep(0.05)
        raise RuntimeError(f"redis on {self.port} did not start:\n{self.proc.log_tail()}")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop(timeout=5)
            self.proc = None


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        return None


@contextlib.contextmanager
def media_server(directory: Path) -> Iterator[str]:
    """Serve `directory` over HTTP on 127.0.0.1; yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def metric_value(metrics_text: str, name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels` (0 when absent)."""
    total = 0.0
    for line in metrics_text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        head, _, value = line.rpartition(" ")
        metric, _, label_text = head.partition("{")
        if metric != name:
            continue
        if all(f'{k}="{v}"' in label_text for k, v in labels.items()):
            total += float(value)
    return total
