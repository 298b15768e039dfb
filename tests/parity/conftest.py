"""Demo weights for the parity tests: sources (for the reference) and both conversions."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from service.weights.convert import convert
from service.weights.demo import DemoPaths


@dataclass(frozen=True)
class ParityWeights:
    paths: DemoPaths
    merged: Path  # converted, LoRA merged
    lora: Path  # converted with --keep-lora

    @property
    def delta(self) -> Path:
        return self.paths.delta("tiny")


@pytest.fixture(scope="session")
def parity_weights(demo_root: Path) -> ParityWeights:
    """The suite's demo weights (tests/conftest.py), and a --keep-lora conversion beside."""
    root = demo_root
    merged = root / "model"
    paths = DemoPaths(root)
    lora = root / "model-lora"
    convert(
        paths.vicuna,
        paths.delta("tiny"),
        paths.imagebind,
        lora,
        imagebind_config=paths.imagebind_config,
        keep_lora=True,
    )
    return ParityWeights(paths, merged, lora)
