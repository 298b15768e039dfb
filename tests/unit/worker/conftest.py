"""Tiny demo weights (3 s to make) shared by the worker unit tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.weights.demo import make_demo_weights


@pytest.fixture(scope="session")
def demo_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_demo_weights(tmp_path_factory.mktemp("demo-worker"), seed=0, size="tiny")
