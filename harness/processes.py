"""Child processes with a log each: start, readiness wait, SIGTERM-then-SIGKILL stop.

Every process logs to its own file; a failure to start raises with the log's tail
so a test report or a benchmark run shows why. Stopping sends SIGTERM (the
graceful path the service must honour) and only then SIGKILL to the whole process
group, so vLLM's engine processes go with their server.
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
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parents[1]
PANDAGPT = [sys.executable, "-m", "service.cli"]

# Ports below the kernel's ephemeral range (net.ipv4.ip_local_port_range, 32768-60999 by
# default). A server binds its port only after its engine has started, seconds later; a
# port from bind(0) is an ephemeral one, which the kernel may hand meanwhile to any other
# socket (vLLM's zmq and gloo sockets, outgoing connections): "address already in use".
# Below the range only an explicit bind can take it.
_LOCAL_PORTS = range(20_000, 32_768)
_issued: set[int] = set()


def free_port() -> int:
    """A loopback port nobody holds now and this process has not handed out before."""
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


def base_env(**extra: str) -> dict[str, str]:
    """The environment for a child: this one without PANDAGPT_* leftovers, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PANDAGPT_")}
    env.setdefault("VLLM_CPU_OMP_THREADS_BIND", "nobind")  # shared cores: no pinning
    env.update(extra)
    return env


class Process:
    """One child process with its log (`log_dir/<name>.log`, appended to)."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        env: Mapping[str, str],
        log_dir: Path,
        cwd: Path = REPO_ROOT,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"{name}.log"
        self._log = self.log_path.open("ab")
        self.popen = subprocess.Popen(
            self.argv,
            cwd=cwd,
            env=dict(env),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: vLLM's children go with it
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

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

    def signal_group(self, sig: int) -> None:
        """Send `sig` to the whole group (vLLM's engine core included): SIGSTOP hangs it."""
        os.killpg(self.popen.pid, sig)

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


def wait_ready(proc: Process, port: int, timeout: float) -> None:
    """`wait_http_ok` on the server's /health/ready; stops the process if it never gets there."""
    try:
        wait_http_ok(proc, f"http://127.0.0.1:{port}/health/ready", timeout)
    except BaseException:
        proc.stop(timeout=5)
        raise


def launch_pandagpt(
    name: str, args: Sequence[str], *, port: int, env: Mapping[str, str], log_dir: Path,
    cwd: Path = REPO_ROOT,
) -> Process:  # fmt: skip
    """Start `pandagpt <args> --port <port>` without waiting (start several, then wait)."""
    return Process(name, [*PANDAGPT, *args, "--port", str(port)], env, log_dir, cwd)


def start_pandagpt(
    name: str,
    args: Sequence[str],
    *,
    port: int,
    env: Mapping[str, str],
    log_dir: Path,
    timeout: float = 240.0,
    cwd: Path = REPO_ROOT,
) -> Process:
    """Start `pandagpt <args> --port <port>` and wait for /health/ready."""
    proc = launch_pandagpt(name, args, port=port, env=env, log_dir=log_dir, cwd=cwd)
    wait_ready(proc, port, timeout)
    return proc


def make_demo_weights(target: Path, log_dir: Path, size: str | None = None) -> Path:
    """`pandagpt demo-weights target [--size size]`; returns the converted model dir."""
    argv = [*PANDAGPT, "demo-weights", str(target)]
    name = "demo-weights"
    if size is not None:
        argv += ["--size", size]
        name += f"-{size}"
    proc = Process(name, argv, base_env(), log_dir)
    if proc.popen.wait(600) != 0:
        raise RuntimeError(f"{' '.join(argv[2:])} failed:\n{proc.log_tail()}")
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

    def kill(self) -> None:
        """SIGKILL (a crash, not a shutdown); `start()` brings it back on the same port."""
        if self.proc is not None:
            self.proc.kill()
            self.stop()


@contextlib.contextmanager
def redis_server(log_dir: Path) -> Iterator[RedisServer]:
    """A started throwaway Redis, stopped on exit."""
    redis = RedisServer(free_port(), log_dir)
    redis.start()
    try:
        yield redis
    finally:
        redis.stop()
