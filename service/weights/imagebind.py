"""The ImageBind piece of a conversion: `.pth` → `imagebind.safetensors` + config JSON.

The released `imagebind_huge.pth` is a plain state dict with the upstream key
names, which `encoders.imagebind` uses unchanged; its checkpoint module does
the strict check and the write. This module picks the config (huge unless a
JSON of constructor kwargs is given) and reports errors naming the file.
"""

from __future__ import annotations

import json
from pathlib import Path

from encoders.imagebind.checkpoint import CheckpointError, convert_to_safetensors
from encoders.imagebind.config import ImageBindConfig


class ImageBindWeightsError(ValueError):
    """The ImageBind checkpoint is unreadable or does not fit its config."""


def read_config(path: Path | None) -> ImageBindConfig:
    """From JSON kwargs (flat, or under `constructor_args` as in the fixtures); huge if None."""
    if path is None:
        return ImageBindConfig.huge()
    data = json.loads(path.read_text())
    return ImageBindConfig(**dict(data.get("constructor_args", data)))


def convert_imagebind(src: Path, config_path: Path | None, out_weights: Path) -> int:
    """Write `out_weights` and `imagebind_config.json` beside it; return the embedding size."""
    config = read_config(config_path)
    try:
        convert_to_safetensors(src, out_weights, config)
    except CheckpointError as exc:
        raise ImageBindWeightsError(f"imagebind {src}: {exc}") from exc
    return int(config.out_embed_dim)
