"""End-to-end fixtures: a log folder per session (the demo weights come from
tests/conftest.py).

Each test module starts its own servers once (module-scoped fixtures) with the
real `pandagpt` CLI as subprocesses, through `harness.deployments`; the tests
talk to them over real HTTP.
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def e2e_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("e2e-logs")
