"""Start and stop a real `pandagpt serve` process for the benchmark.

The service is measured the way users run it: its own process (and vLLM's
engine process), reached over HTTP, started and stopped by the harness
(`harness.deployments.serve_all_in_one`). Settings go in as `PANDAGPT_*`
variables, the same path as a deployment.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from harness.deployments import serve_all_in_one
from harness.processes import REPO_ROOT

BENCH_SETTINGS = {
    "PANDAGPT_DTYPE": "float32",  # the reference runs float32: same tokens
    "PANDAGPT_MAX_MODEL_LEN": "1024",
    "PANDAGPT_LOG_LEVEL": "warning",  # access logs would cost CPU during the load
    "PANDAGPT_ENABLE_PLAYGROUND": "false",
}


@dataclass(frozen=True)
class Service:
    url: str  # base URL
    pid: int  # the `pandagpt serve` process (vLLM's processes are its descendants)


@contextlib.contextmanager
def running_service(
    model_dir: Path, log_path: Path, settings: Mapping[str, str] | None = None
) -> Iterator[str]:
    """`pandagpt serve --model-dir model_dir` on a free port; yields its base URL."""
    with started_service(model_dir, log_path, settings) as service:
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
    env = {**BENCH_SETTINGS, **(settings or {})}
    with serve_all_in_one(
        model_dir, log_path.parent, log_path.stem, env, timeout=timeout_s, root=root
    ) as served:
        yield Service(served.url, served.pid)
