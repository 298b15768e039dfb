"""Strict loading of ImageBind weights (`imagebind_huge.pth` or our safetensors).

The module tree uses the checkpoint's own key names, so there is no rename
table: every key must be present with its exact shape, and nothing else.
The model is built on the meta device and the weights are assigned
(`strict=True, assign=True`), so a 4.8 GB checkpoint is never copied twice.
`.pth` files are read with `weights_only=True, mmap=True` (no pickle code runs).

`convert_to_safetensors` is the one-off conversion `pandagpt convert` runs; it
writes `imagebind_config.json` beside the weights.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

from encoders.imagebind.config import ImageBindConfig
from encoders.imagebind.model import ImageBindModel

CONFIG_NAME = "imagebind_config.json"
# Kept in float32 whatever the serving dtype: the logit scales are exp()'d and
# bf16 would move log(10) to a scale of 9.94.
FLOAT32_SUFFIXES = ("log_logit_scale",)


class CheckpointError(ValueError):
    """The weights file does not match the ImageBind layout (names the key)."""


def read_state_dict(path: str | Path) -> dict[str, Tensor]:
    """Tensors of a `.safetensors` file or a `.pth` plain state dict, on CPU."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    if path.suffix == ".safetensors":
        return load_file(path, device="cpu")
    try:
        obj = _torch_load(path)
    except (RuntimeError, pickle.UnpicklingError, EOFError, ValueError) as exc:
        raise CheckpointError(
            f"{path}: not a torch checkpoint of plain tensors ({type(exc).__name__}; "
            "pickled code is never loaded)"
        ) from exc
    if not isinstance(obj, dict) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise CheckpointError(f"{path}: expected a flat state dict of tensors")
    return obj


def _torch_load(path: Path) -> object:
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError as exc:
        if "mmap" not in str(exc):
            raise
    # Files from before torch's zipfile format cannot be memory-mapped.
    return torch.load(path, map_location="cpu", weights_only=True)


def check_state_dict(model: ImageBindModel, state_dict: dict[str, Tensor]) -> None:
    """Raise `CheckpointError` naming every missing, unexpected or misshapen key."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    misshapen = [
        f"{k}: checkpoint {list(state_dict[k].shape)}, model {list(v.shape)}"
        for k, v in expected.items()
        if k in state_dict and state_dict[k].shape != v.shape
    ]
    problems = []
    if missing:
        problems.append(f"missing keys ({len(missing)}): {', '.join(missing[:10])}")
    if unexpected:
        problems.append(f"unexpected keys ({len(unexpected)}): {', '.join(unexpected[:10])}")
    if misshapen:
        problems.append(f"shape mismatch ({len(misshapen)}): {'; '.join(misshapen[:10])}")
    if problems:
        raise CheckpointError(
            "ImageBind checkpoint does not match the config "
            f"({len(state_dict)} keys in file, {len(expected)} expected): " + " | ".join(problems)
        )


def _config_beside(path: Path) -> ImageBindConfig:
    candidate = path.parent / CONFIG_NAME
    if candidate.is_file():
        return ImageBindConfig.from_dict(json.loads(candidate.read_text()))
    return ImageBindConfig.huge()


def build_meta_model(config: ImageBindConfig) -> ImageBindModel:
    with torch.device("meta"):
        return ImageBindModel(config)


def load_imagebind(
    path: str | Path,
    config: ImageBindConfig | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> ImageBindModel:
    """Load weights strictly into a fresh model in eval mode.

    `config` defaults to the `imagebind_config.json` beside `path`, else huge."""
    path = Path(path)
    config = config or _config_beside(path)
    model = build_meta_model(config)
    state_dict = read_state_dict(path)
    check_state_dict(model, state_dict)
    cast = {
        k: v.to(device=device, dtype=torch.float32 if k.endswith(FLOAT32_SUFFIXES) else dtype)
        for k, v in state_dict.items()
    }
    model.load_state_dict(cast, strict=True, assign=True)
    model.requires_grad_(False)
    return model.eval()


def convert_to_safetensors(
    src_pth: str | Path, dst: str | Path, config: ImageBindConfig | None = None
) -> Path:
    """Check `src_pth` against `config` (huge by default) and write it as safetensors,
    with `imagebind_config.json` beside it. Returns the written path."""
    config = config or ImageBindConfig.huge()
    state_dict = read_state_dict(src_pth)
    check_state_dict(build_meta_model(config), state_dict)
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in state_dict.items()}, dst)
    (dst.parent / CONFIG_NAME).write_text(json.dumps(config.to_dict(), indent=2) + "\n")
    return dst
