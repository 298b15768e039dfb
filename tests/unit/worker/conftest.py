"""Tiny demo weights (3 s to make) shared by the worker unit tests: the suite's own."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def demo_model(demo_model_dir: Path) -> Path:
    return demo_model_dir  # tests/conftest.py
