"""Fixtures for the whole suite: one set of demo weights per session.

The tiny random PandaGPT (`pandagpt demo-weights`' default: seed 0, size tiny) is
made once, in-process, and shared by the end-to-end, hardening, parity and worker
tests; a server pointed at the root as its demo dir finds it current and reuses it.
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from service.weights.demo import make_demo_weights  # torch: only where it is used

    root = tmp_path_factory.mktemp("demo-weights")
    make_demo_weights(root, seed=0, size="tiny")
    return root


@pytest.fixture(scope="session")
def demo_model_dir(demo_root: Path) -> Path:
    return demo_root / "model"
