"""Media preprocessing: raw bytes → ImageBind model inputs (CPU, float32, batch dim 1).

``preprocess(modality, data, limits)`` is the entry point (docs/INTERFACES.md);
``sniff(data)`` names a type from magic bytes; failures are ``MediaError`` with a
reason code from ``REASONS``. One module per modality (image, thermal, depth,
audio, video, imu), shared steps in raster, clips, resample, fbank, container;
video_decode decodes only the frames the sampler uses, threads sizes the
preprocessing pool.

``preprocess`` and ``SHAPES`` are imported on first use, so that the gateway
can import ``encoders.media.sniff`` without torch, PyAV or Pillow.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import REASONS, MediaBusy, MediaCancelled, MediaError
from .guard import DecodeGuard
from .media_limits import MediaLimits
from .sniff import sniff

if TYPE_CHECKING:
    from .pipeline import SHAPES, preprocess

__all__ = [
    "REASONS",
    "SHAPES",
    "DecodeGuard",
    "MediaBusy",
    "MediaCancelled",
    "MediaError",
    "MediaLimits",
    "preprocess",
    "sniff",
]


def __getattr__(name: str) -> Any:
    if name in ("SHAPES", "preprocess"):
        from . import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
