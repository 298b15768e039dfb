"""End-to-end fixtures: demo weights made once per session, a log folder per session.

Each test module starts its own servers once (module-scoped fixtures) with the
real `pandagpt` CLI as subprocesses; the tests talk to them over real HTTP.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.processes import make_demo_weights


@pytest.fixture(scope="session")
def e2e_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("e2e-logs")


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory: pytest.TempPathFactory, e2e_logs: Path) -> Path:
    """`pandagpt demo-weights ROOT` into a temporary folder, once per test session.
    `serve` pointed at ROOT as its demo dir finds them current and reuses them."""
    root = tmp_path_factory.mktemp("demo-weights")
    make_demo_weights(root, e2e_logs)
    return root


@pytest.fixture(scope="session")
def demo_model_dir(demo_root: Path) -> Path:
    return demo_root / "model"
