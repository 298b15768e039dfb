"""Real deployments for the hardening tests and the soak: `pandagpt serve`, or split mode
(throwaway Redis + workers + gateway), plus what they cost (RSS, peak RSS, open fds).

Processes come from `tests.utils.processes` (logs per process, SIGTERM then SIGKILL).
Figures are read from `/proc/<pid>/status` (VmRSS, VmHWM) and `/proc/<pid>/fd`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tests.utils.processes import (
    PANDAGPT,
    Process,
    RedisServer,
    base_env,
    free_port,
    start_pandagpt,
    wait_http_ok,
)

KIB = 1024
# pytest's `record_property` fixture (pytest exports no name for its type)
RecordProperty = Callable[[str, object], None]


def proc_status_kib(pid: int, key: str) -> int:
    """A `/proc/<pid>/status` field in KiB (VmRSS, VmHWM); 0 if the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{key}:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        return 0
    return 0


def rss_bytes(pid: int) -> int:
    return proc_status_kib(pid, "VmRSS") * KIB


def peak_rss_bytes(pid: int) -> int:
    return proc_status_kib(pid, "VmHWM") * KIB


def fd_count(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def children(pid: int) -> list[int]:
    """Direct and indirect child pids (vLLM's engine core runs in a child)."""
    found: list[int] = []
    stack = [pid]
    while stack and len(found) < 256:
        parent = stack.pop()
        try:
            tasks = os.listdir(f"/proc/{parent}/task")
        except OSError:
            continue
        for tid in tasks:
            with contextlib.suppress(OSError, ValueError):
                text = Path(f"/proc/{parent}/task/{tid}/children").read_text()
                kids = [int(x) for x in text.split()]
                found.extend(kids)
                stack.extend(kids)
    return found


def tree_rss_bytes(pid: int) -> int:
    return sum(rss_bytes(p) for p in [pid, *children(pid)])


@dataclass
class Split:
    """Gateway + workers + a throwaway Redis, all real processes on loopback."""

    gateway: str
    workers: dict[str, str]  # name -> base URL
    procs: dict[str, Process]
    redis: RedisServer
    model_dir: Path
    log_dir: Path
    worker_env: dict[str, str] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    gateway_argv: list[str] = field(default_factory=list)
    gateway_env: dict[str, str] = field(default_factory=dict)

    def pids(self) -> dict[str, int]:
        return {name: p.popen.pid for name, p in self.procs.items() if p.alive}

    def start_worker(self, name: str, timeout: float = 300.0) -> Process:
        proc = Process(
            name,
            [*PANDAGPT, "worker", "--port", str(self.ports[name])],
            self.worker_env,
            self.log_dir,
        )
        self.procs[name] = proc
        wait_http_ok(proc, f"{self.workers[name]}/health/ready", timeout)
        return proc

    def start_gateway(self, timeout: float = 60.0) -> Process:
        proc = start_pandagpt(
            "gateway",
            self.gateway_argv,
            port=self.ports["gateway"],
            env=self.gateway_env,
            log_dir=self.log_dir,
            timeout=timeout,
        )
        self.procs["gateway"] = proc
        return proc


@contextlib.contextmanager
def split_deployment(
    model_dir: Path,
    log_dir: Path,
    *,
    workers: int = 2,
    worker_env: Mapping[str, str] | None = None,
    gateway_env: Mapping[str, str] | None = None,
) -> Iterator[Split]:
    """Start Redis, `workers` workers (at once) and one gateway; stop all on exit."""
    redis = RedisServer(free_port(), log_dir)
    redis.start()
    names = [f"worker-{chr(ord('a') + i)}" for i in range(workers)]
    ports = {name: free_port() for name in names}
    ports["gateway"] = free_port()
    w_env = base_env(
        PANDAGPT_MODEL_DIR=str(model_dir),
        PANDAGPT_REDIS_URL=redis.url,
        PANDAGPT_CACHE_PREFIX="pandagpt-hardening:",
        PANDAGPT_HOST="127.0.0.1",
        PANDAGPT_MAX_MODEL_LEN="1024",
        **dict(worker_env or {}),
    )
    g_env = base_env(
        PANDAGPT_WORKER_POLL_INTERVAL_S="0.5",
        PANDAGPT_HOST="127.0.0.1",
        **dict(gateway_env or {}),
    )
    urls = {name: f"http://127.0.0.1:{ports[name]}" for name in names}
    split = Split(
        gateway=f"http://127.0.0.1:{ports['gateway']}",
        workers=urls,
        procs={},
        redis=redis,
        model_dir=model_dir,
        log_dir=log_dir,
        worker_env=w_env,
        ports=ports,
        gateway_argv=["gateway", *[a for u in urls.values() for a in ("--worker-url", u)]],
        gateway_env=g_env,
    )
    try:
        for name in names:  # vLLM start-up dominates: start all, then wait for each
            split.procs[name] = Process(
                name, [*PANDAGPT, "worker", "--port", str(ports[name])], w_env, log_dir
            )
        for name in names:
            wait_http_ok(split.procs[name], f"{urls[name]}/health/ready", 300)
        split.start_gateway()
        yield split
    finally:
        for proc in reversed(list(split.procs.values())):
            with contextlib.suppress(Exception):
                proc.stop(timeout=20)
        redis.stop()


@dataclass
class Served:
    url: str
    proc: Process


@contextlib.contextmanager
def serve_all_in_one(
    model_dir: Path, log_dir: Path, name: str, env: Mapping[str, str] | None = None
) -> Iterator[Served]:
    """`pandagpt serve` on `model_dir` with `env` on top of a clean environment."""
    port = free_port()
    proc = start_pandagpt(
        name,
        ["serve", "--model-dir", str(model_dir), "--host", "127.0.0.1"],
        port=port,
        env=base_env(PANDAGPT_MAX_MODEL_LEN="1024", **dict(env or {})),
        log_dir=log_dir,
        timeout=300,
    )
    try:
        yield Served(f"http://127.0.0.1:{port}", proc)
    finally:
        proc.stop(timeout=30)


def kill_group(proc: Process, sig: int) -> None:
    """Send `sig` to a process's whole group (vLLM's engine core included)."""
    os.killpg(proc.popen.pid, sig)


def kill_redis(redis: RedisServer) -> None:
    """SIGKILL the throwaway Redis; `redis.start()` brings it back on the same port."""
    if redis.proc is not None:
        redis.proc.kill()
        redis.stop()
