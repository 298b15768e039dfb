"""``preprocess``: one media item's bytes → the model input tensor for its modality.

The single entry point the runner calls (from threads: every step here is
pure, caches are ``functools.lru_cache`` of read-only tensors). Checks that apply
to every modality (empty, byte cap) happen here; any foreign exception that a
modality module did not map is turned into ``MediaError("corrupt")`` so a
hostile file can never surface as a 500. The item's ``DecodeGuard`` (what it
may reserve and spend, and whether anyone still waits for it) is closed here,
giving back its reservation, however decoding ends.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import torch

from .audio import preprocess_audio
from .depth import preprocess_depth
from .errors import MediaBusy, MediaCancelled, MediaError
from .guard import DecodeGuard
from .image import preprocess_image
from .imu import preprocess_imu
from .media_limits import MediaLimits
from .thermal import preprocess_thermal
from .video import preprocess_video

Loader = Callable[[bytes, MediaLimits, DecodeGuard], torch.Tensor]

LOADERS: Final[dict[str, Loader]] = {
    "image": preprocess_image,
    "video": preprocess_video,
    "audio": preprocess_audio,
    "thermal": preprocess_thermal,
    "depth": preprocess_depth,
    "imu": preprocess_imu,
}

#: Output shape per modality (batch dim 1), the contract in docs/INTERFACES.md.
SHAPES: Final[dict[str, tuple[int, ...]]] = {
    "image": (1, 3, 224, 224),
    "video": (1, 15, 3, 2, 224, 224),
    "audio": (1, 3, 1, 128, 204),
    "thermal": (1, 1, 224, 224),
    "depth": (1, 1, 224, 224),
    "imu": (1, 6, 2000),
}


def preprocess(
    modality: str,
    data: bytes,
    limits: MediaLimits | None = None,
    guard: DecodeGuard | None = None,
) -> torch.Tensor:
    """Decode and preprocess one media item → float32 CPU tensor of ``SHAPES[modality]``.

    Raises ``MediaError`` for anything wrong with ``data``, ``MediaBusy`` when its
    decoding does not fit the memory budget now, ``MediaCancelled`` when ``guard``
    says nobody waits for it; ``ValueError`` for an unknown ``modality`` (a caller
    bug, not a client fault). Without a ``guard``, the per-item caps and the CPU
    ceiling of ``limits`` still apply.
    """
    loader = LOADERS.get(modality)
    if loader is None:
        raise ValueError(f"unknown modality {modality!r}; expected one of {sorted(LOADERS)}")
    limits = limits if limits is not None else MediaLimits()
    if not data:
        raise MediaError("empty", f"the {modality} item has no bytes")
    if len(data) > limits.max_bytes:
        raise MediaError(
            "too_large", f"{modality} is {len(data)} bytes, over the {limits.max_bytes}-byte limit"
        )
    guard = guard if guard is not None else DecodeGuard(max_cpu_s=limits.max_decode_cpu_s)
    try:
        out = loader(bytes(data), limits, guard)
    except (MediaError, MediaBusy, MediaCancelled):
        raise
    except MemoryError as exc:
        raise MediaError("too_large", f"{modality} needs more memory than allowed") from exc
    except Exception as exc:
        # Decoders raise a zoo of types on hostile data; map the rest once, here.
        raise MediaError(
            "corrupt", f"{modality} could not be decoded ({type(exc).__name__})"
        ) from exc
    finally:
        guard.close()
    return out
