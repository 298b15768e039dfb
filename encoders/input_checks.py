"""What the encoder accepts: modality names, per-item shapes and dtypes, text tokens.

Checks run per item before it joins a batch, so a malformed tensor fails only its
own caller with a `ValueError` that names the shape it should have had, and a
batch only ever stacks items of one shape. Text arrives as a string and leaves as
the 77 token ids the text tower takes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from encoders.imagebind.config import IMAGE_SIZE, IMU_CHANNELS, IMU_LENGTH, ImageBindConfig

if TYPE_CHECKING:
    from encoders.imagebind.tokenizer import CLIPTokenizer

# API modality name -> ImageBind tower.
TOWERS: dict[str, str] = {
    "image": "vision",
    "video": "vision",
    "audio": "audio",
    "thermal": "thermal",
    "depth": "depth",
    "imu": "imu",
    "text": "text",
}
# Dimensions of one item, without the batch dim.
ITEM_NDIM: dict[str, int] = {
    "image": 3,
    "video": 5,
    "audio": 4,
    "thermal": 3,
    "depth": 3,
    "imu": 2,
    "text": 1,
}


def item_shape(config: ImageBindConfig, modality: str, x: Tensor) -> tuple[int, ...]:
    """The expected per-item shape; video and audio take any clip count S = x.shape[0]."""
    s = IMAGE_SIZE
    return {
        "image": (3, s, s),
        "thermal": (1, s, s),
        "depth": (1, s, s),
        "imu": (IMU_CHANNELS, IMU_LENGTH),
        "text": (config.context_length,),
        "video": (x.shape[0], 3, config.video_frames, s, s),
        "audio": (x.shape[0], 1, config.audio_num_mel_bins, config.audio_target_len),
    }[modality]


def checked_item(config: ImageBindConfig, device: torch.device, modality: str, x: Tensor) -> Tensor:
    """`x` as one batch item (batch dim of 1 dropped, detached, on the CPU unless it is
    already on `device`), or a `ValueError` saying what the modality takes."""
    if modality not in TOWERS:
        raise ValueError(f"unknown modality {modality!r}; expected one of {sorted(TOWERS)}")
    ndim = ITEM_NDIM[modality]
    if x.ndim == ndim + 1 and x.shape[0] == 1:
        x = x[0]  # drop the batch dim of 1 that preprocess returns
    expected = item_shape(config, modality, x) if x.ndim == ndim else None
    if expected is None or tuple(x.shape) != expected or x.numel() == 0:
        raise ValueError(
            f"{modality} input has shape {list(x.shape)}; expected "
            f"{list(expected) if expected else f'{ndim} dims'} (optionally with a "
            "leading batch dim of 1)"
        )
    if modality == "text":
        if x.dtype != torch.long:
            raise ValueError(f"text input must be int64 token ids, got {x.dtype}")
    elif not x.is_floating_point():
        raise ValueError(f"{modality} input must be floating point, got {x.dtype}")
    return x.detach() if x.device == device else x.detach().cpu()


class TextTokens:
    """Text → the text tower's token ids `(77,)`; the CLIP tokenizer is built on first
    use (its BPE table takes a moment to load) unless one is given."""

    def __init__(self, tokenizer: CLIPTokenizer | None = None) -> None:
        self._tokenizer = tokenizer

    def __call__(self, text: str) -> Tensor:
        if self._tokenizer is None:
            from encoders.imagebind.tokenizer import CLIPTokenizer

            self._tokenizer = CLIPTokenizer()
        return self._tokenizer([text])[0]  # (77,)
