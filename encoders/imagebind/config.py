"""ImageBind configuration.

The field names are the keyword arguments of the reference `ImageBindModel`
constructor (facebookresearch/ImageBind `models/imagebind_model.py`), so a
reference kwargs dict loads unchanged: `ImageBindConfig(**kwargs)`.

Deliberate departures:
- Defaults are the released `imagebind_huge` checkpoint (STYLE §2), not the
  reference constructor's smaller defaults. `ImageBindConfig.huge()` is the same.
- `*_drop_path` are accepted and saved but unused: this is an inference-only model.
- `imu_kernel_size` is accepted and ignored, as in the reference (the IMU window
  is fixed at 8 samples × 6 channels).
- Three fields the reference hard-codes are exposed for tests and tools:
  `vocab_size`, `context_length`, and `attn_implementation` (a key of
  `encoders.imagebind.model.ATTENTION_FUNCTIONS`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

MODALITIES: tuple[str, ...] = ("vision", "text", "audio", "depth", "thermal", "imu")

# Input geometry fixed by the reference (not constructor arguments).
IMAGE_SIZE = 224
IMU_CHANNELS = 6
IMU_LENGTH = 2000
IMU_WINDOW = 8


@dataclass
class ImageBindConfig:
    video_frames: int = 2
    kernel_size: tuple[int, int, int] = (2, 14, 14)
    audio_kernel_size: int = 16
    audio_stride: int = 10
    out_embed_dim: int = 1024
    vision_embed_dim: int = 1280
    vision_num_blocks: int = 32
    vision_num_heads: int = 16
    audio_embed_dim: int = 768
    audio_num_blocks: int = 12
    audio_num_heads: int = 12
    audio_num_mel_bins: int = 128
    audio_target_len: int = 204
    audio_drop_path: float = 0.1
    text_embed_dim: int = 1024
    text_num_blocks: int = 24
    text_num_heads: int = 16
    depth_embed_dim: int = 384
    depth_kernel_size: int = 16
    depth_num_blocks: int = 12
    depth_num_heads: int = 8
    depth_drop_path: float = 0.0
    thermal_embed_dim: int = 768
    thermal_kernel_size: int = 16
    thermal_num_blocks: int = 12
    thermal_num_heads: int = 12
    thermal_drop_path: float = 0.0
    imu_embed_dim: int = 512
    imu_kernel_size: int = 8
    imu_num_blocks: int = 6
    imu_num_heads: int = 8
    imu_drop_path: float = 0.7
    # Fixed in the reference; exposed here.
    vocab_size: int = 49408
    context_length: int = 77
    attn_implementation: str = "sdpa"
    # Derived in __post_init__: tokens per sample including CLS.
    num_tokens: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.kernel_size = tuple(int(k) for k in self.kernel_size)  # type: ignore[assignment]
        if len(self.kernel_size) != 3:
            raise ValueError(f"kernel_size must have 3 entries, got {len(self.kernel_size)}")
        for m in MODALITIES:
            dim, heads = self.embed_dim(m), self.num_heads(m)
            if dim % heads:
                raise ValueError(
                    f"{m}_embed_dim ({dim}) must be divisible by {m}_num_heads ({heads})"
                )
        kt, kh, kw = self.kernel_size
        if self.video_frames % kt:
            raise ValueError(
                f"video_frames ({self.video_frames}) must be divisible by kernel_size[0] ({kt})"
            )
        if IMAGE_SIZE % kh or IMAGE_SIZE % kw:
            raise ValueError(f"kernel_size {self.kernel_size} must tile {IMAGE_SIZE}")
        mel = (self.audio_num_mel_bins - self.audio_kernel_size) // self.audio_stride + 1
        frames = (self.audio_target_len - self.audio_kernel_size) // self.audio_stride + 1
        self.num_tokens = {
            "vision": (self.video_frames // kt) * (IMAGE_SIZE // kh) * (IMAGE_SIZE // kw) + 1,
            "text": self.context_length,
            "audio": mel * frames + 1,
            "depth": (IMAGE_SIZE // self.depth_kernel_size) ** 2 + 1,
            "thermal": (IMAGE_SIZE // self.thermal_kernel_size) ** 2 + 1,
            "imu": IMU_LENGTH // IMU_WINDOW + 1,
        }

    def embed_dim(self, modality: str) -> int:
        return int(getattr(self, f"{modality}_embed_dim"))

    def num_blocks(self, modality: str) -> int:
        return int(getattr(self, f"{modality}_num_blocks"))

    def num_heads(self, modality: str) -> int:
        return int(getattr(self, f"{modality}_num_heads"))

    @classmethod
    def huge(cls, **overrides: Any) -> ImageBindConfig:
        """The released `imagebind_huge` sizes (1.2B parameters)."""
        return cls(**overrides)

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.init}
        out["kernel_size"] = list(self.kernel_size)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ImageBindConfig:
        known = {f.name for f in dataclasses.fields(cls) if f.init}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown ImageBindConfig fields: {unknown}")
        return cls(**data)
