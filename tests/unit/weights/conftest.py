from __future__ import annotations

from pathlib import Path

import pytest

from service.weights.demo import DemoPaths, make_demo_weights


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoPaths:
    root = tmp_path_factory.mktemp("demo-weights")
    make_demo_weights(root, seed=0, size="tiny")
    return DemoPaths(root)


@pytest.fixture
def sources(demo: DemoPaths) -> tuple[Path, Path, Path, Path]:
    """(vicuna dir, delta, imagebind .pth, imagebind config) of the demo sources."""
    return demo.vicuna, demo.delta("tiny"), demo.imagebind, demo.imagebind_config
