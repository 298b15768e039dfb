"""One `pandagpt serve` on demo weights for the documentation's runnable examples.

It binds a free port, not 8000: the examples say `http://localhost:8000`, as a reader
types it, and the example runner points that address at this server.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.deployments import serve_all_in_one


@pytest.fixture(scope="session")
def docs_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("docs-logs")


# Module-scoped: the server stops once the examples have run, instead of idling beside
# the rest of the suite.
@pytest.fixture(scope="module")
def docs_server(demo_root: Path, docs_logs: Path) -> Iterator[str]:
    """The base URL of a `pandagpt serve` on demo weights, no key, in-memory cache."""
    env = {
        "PANDAGPT_DEMO_DIR": str(demo_root),  # the suite's (tests/conftest.py)
        "PANDAGPT_ENFORCE_EAGER": "true",  # no compile warm-up: the examples need no speed
    }
    with serve_all_in_one(None, docs_logs, "docs-serve", env, stop_timeout=60) as served:
        yield served.url
