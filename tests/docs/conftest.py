"""One `pandagpt serve` on demo weights for the documentation's runnable examples.

It binds a free port, not 8000: the examples say `http://localhost:8000`, as a reader
types it, and the example runner points that address at this server.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.utils.processes import base_env, free_port, make_demo_weights, start_pandagpt


@pytest.fixture(scope="session")
def docs_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("docs-logs")


@pytest.fixture(scope="session")
def docs_server(tmp_path_factory: pytest.TempPathFactory, docs_logs: Path) -> Iterator[str]:
    """The base URL of a `pandagpt serve` on demo weights, no key, in-memory cache."""
    demo_root = tmp_path_factory.mktemp("docs-demo-weights")
    make_demo_weights(demo_root, docs_logs)
    port = free_port()
    env = base_env(
        PANDAGPT_DEMO_DIR=str(demo_root),
        PANDAGPT_HOST="127.0.0.1",
        PANDAGPT_MAX_MODEL_LEN="1024",
        PANDAGPT_ENFORCE_EAGER="true",  # no compile warm-up: the examples need no speed
    )
    proc = start_pandagpt("docs-serve", ["serve"], port=port, env=env, log_dir=docs_logs)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.stop(timeout=60)
