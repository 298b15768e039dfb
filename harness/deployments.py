"""Deployments as context managers: all-in-one `pandagpt serve`, or split mode (Redis,
workers, gateways), each started the way users run it and stopped on exit.

Settings go in as `PANDAGPT_*` variables on top of a clean environment, the path
a real deployment takes. Workers start all at once and are awaited after, since
vLLM's start-up dominates; the gateways start (all at once too) once every worker
is ready, since a gateway polls its workers from its first second.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.processes import (
    REPO_ROOT,
    Process,
    RedisServer,
    base_env,
    free_port,
    launch_pandagpt,
    start_pandagpt,
    wait_ready,
)

WORKER_READY_S = 300.0  # a worker's engine start on two shared cores
GATEWAY_READY_S = 60.0
# Every server: loopback only, and a short context (the demo weights' tests need no more).
# Settings given by a caller override these.
LOOPBACK_1024 = {"PANDAGPT_HOST": "127.0.0.1", "PANDAGPT_MAX_MODEL_LEN": "1024"}
# A gateway notices a worker back (or gone) within half a second, not the default's seconds.
GATEWAY_DEFAULTS = {"PANDAGPT_HOST": "127.0.0.1", "PANDAGPT_WORKER_POLL_INTERVAL_S": "0.5"}


def local_url(port: int) -> str:
    return f"http://127.0.0.1:{port}"


@dataclass
class Served:
    """One `pandagpt serve` process."""

    url: str
    proc: Process

    @property
    def pid(self) -> int:
        return self.proc.pid


@contextlib.contextmanager
def serve_all_in_one(
    model_dir: Path | None,
    log_dir: Path,
    name: str = "serve",
    env: Mapping[str, str] | None = None,
    *,
    timeout: float = WORKER_READY_S,
    stop_timeout: float = 30.0,
    root: Path = REPO_ROOT,
) -> Iterator[Served]:
    """`pandagpt serve --model-dir model_dir` with `env` on a clean environment; with no
    `model_dir`, `serve` finds (or makes) demo weights in PANDAGPT_DEMO_DIR.

    `root`: the source tree the service runs from (another checkout, e.g. the
    previous commit, goes first on PYTHONPATH so that its packages shadow these).
    After the block, `proc.popen.returncode` says how it took SIGTERM."""
    port = free_port()
    settings = base_env(**{**LOOPBACK_1024, **(env or {})})
    if root != REPO_ROOT:
        settings["PYTHONPATH"] = ":".join(p for p in (str(root), settings.get("PYTHONPATH")) if p)
    args = ["serve"] if model_dir is None else ["serve", "--model-dir", str(model_dir.resolve())]
    proc = start_pandagpt(
        name, args, port=port, env=settings, log_dir=log_dir, timeout=timeout, cwd=root
    )
    try:
        yield Served(local_url(port), proc)
    finally:
        proc.stop(timeout=stop_timeout)


@dataclass(frozen=True)
class WorkerSpec:
    """One worker of a split deployment: its name and the settings only it gets."""

    name: str
    env: Mapping[str, str] = field(default_factory=dict)


@dataclass
class Split:
    """Gateways + workers (+ a throwaway Redis unless given one), all on loopback."""

    gateways: dict[str, str]  # name -> base URL
    workers: dict[str, str]  # name -> base URL
    procs: dict[str, Process]  # workers and gateways by name
    redis: RedisServer | None  # the throwaway one, if this deployment started it
    redis_url: str | None
    model_dir: Path
    log_dir: Path
    prefix: str = ""  # of every log file's name
    worker_envs: dict[str, dict[str, str]] = field(default_factory=dict)
    gateway_argv: list[str] = field(default_factory=list)
    gateway_env: dict[str, str] = field(default_factory=dict)

    @property
    def gateway(self) -> str:
        """The first gateway's base URL (most deployments have one)."""
        return next(iter(self.gateways.values()))

    @property
    def ports(self) -> dict[str, int]:
        return {name: int(url.rsplit(":", 1)[1]) for name, url in self.urls().items()}

    def urls(self) -> dict[str, str]:
        """Every server's base URL by name, the gateways (the front) first."""
        return {**self.gateways, **self.workers}

    def pids(self) -> dict[str, int]:
        return {name: p.pid for name, p in self.procs.items() if p.alive}

    def launch_worker(self, name: str) -> Process:
        """(Re)start worker `name` on its port without waiting for it."""
        proc = launch_pandagpt(
            f"{self.prefix}{name}",
            ["worker"],
            port=self.ports[name],
            env=self.worker_envs[name],
            log_dir=self.log_dir,
        )
        self.procs[name] = proc
        return proc

    def start_worker(self, name: str, timeout: float = WORKER_READY_S) -> Process:
        proc = self.launch_worker(name)
        wait_ready(proc, self.ports[name], timeout)
        return proc

    def launch_gateway(self, name: str = "gateway") -> Process:
        """(Re)start gateway `name` on its port without waiting for it."""
        proc = launch_pandagpt(
            f"{self.prefix}{name}",
            self.gateway_argv,
            port=self.ports[name],
            env=self.gateway_env,
            log_dir=self.log_dir,
        )
        self.procs[name] = proc
        return proc

    def start_gateway(self, name: str = "gateway", timeout: float = GATEWAY_READY_S) -> Process:
        proc = self.launch_gateway(name)
        wait_ready(proc, self.ports[name], timeout)
        return proc

    def stop(self) -> None:
        for proc in reversed(list(self.procs.values())):
            with contextlib.suppress(Exception):
                proc.stop(timeout=20)
        if self.redis is not None:
            self.redis.stop()


def worker_names(count: int) -> list[WorkerSpec]:
    """`worker-a`, `worker-b`, ...: `count` workers alike."""
    return [WorkerSpec(f"worker-{chr(ord('a') + i)}") for i in range(count)]


@contextlib.contextmanager
def split_deployment(
    model_dir: Path,
    log_dir: Path,
    *,
    workers: int | Sequence[WorkerSpec] = 2,
    gateways: Sequence[str] = ("gateway",),
    worker_env: Mapping[str, str] | None = None,
    gateway_env: Mapping[str, str] | None = None,
    redis_url: str | None = None,
    cache: bool = True,
    cache_prefix: str = "pandagpt-hardening:",
    prefix: str = "",
) -> Iterator[Split]:
    """Start Redis (a throwaway one unless `redis_url` is given; none without `cache`),
    the workers and the gateways (each with every worker); stop all on exit. `prefix`
    goes before every log file's name: deployments sharing a log folder keep theirs apart."""
    specs = worker_names(workers) if isinstance(workers, int) else list(workers)
    redis = None
    if cache and redis_url is None:
        redis = RedisServer(free_port(), log_dir)
        redis.start()
        redis_url = redis.url
    cache_env = {}
    if cache and redis_url:
        cache_env = {"PANDAGPT_REDIS_URL": redis_url, "PANDAGPT_CACHE_PREFIX": cache_prefix}
    worker_urls = {spec.name: local_url(free_port()) for spec in specs}
    common = base_env(
        **{"PANDAGPT_MODEL_DIR": str(model_dir), **cache_env, **LOOPBACK_1024, **(worker_env or {})}
    )
    split = Split(
        gateways={name: local_url(free_port()) for name in gateways},
        workers=worker_urls,
        procs={},
        redis=redis,
        redis_url=redis_url,
        model_dir=model_dir,
        log_dir=log_dir,
        prefix=prefix,
        worker_envs={spec.name: {**common, **spec.env} for spec in specs},
        gateway_argv=["gateway", *[a for u in worker_urls.values() for a in ("--worker-url", u)]],
        gateway_env=base_env(**{**GATEWAY_DEFAULTS, **(gateway_env or {})}),
    )
    try:
        for spec in specs:
            split.launch_worker(spec.name)
        for spec in specs:
            wait_ready(split.procs[spec.name], split.ports[spec.name], WORKER_READY_S)
        for name in gateways:  # imports dominate a gateway's start: start all, then wait
            split.launch_gateway(name)
        for name in gateways:
            wait_ready(split.procs[name], split.ports[name], GATEWAY_READY_S)
        yield split
    finally:
        split.stop()


@dataclass
class Front:
    """A deployment as a client and a meter see it: the URL to send to, and every server."""

    url: str
    urls: dict[str, str]  # name -> base URL (its /metrics), the front first
    pids: dict[str, int]  # name -> process id (its memory, its CPU)


@contextlib.contextmanager
def serve_or_split(
    mode: str,
    model_dir: Path,
    log_dir: Path,
    env: Mapping[str, str],
    *,
    name: str = "serve",
    **split_options: Any,
) -> Iterator[Front]:
    """`serve` (named `name`) alone, or `split`: one worker behind one gateway, both given
    `env`, and `split_options` for `split_deployment`."""
    if mode == "serve":
        with serve_all_in_one(model_dir, log_dir, name, env) as served:
            yield Front(served.url, {"serve": served.url}, {"serve": served.pid})
        return
    if mode != "split":
        raise ValueError(f"mode {mode!r}: serve or split")
    with split_deployment(
        model_dir, log_dir, workers=1, worker_env=env, gateway_env=env, **split_options
    ) as split:
        yield Front(split.gateway, split.urls(), split.pids())
