"""Resource limits for media preprocessing (the service fills them from Settings).

Every limit is checked as early as possible: byte size before parsing, declared
geometry and duration from headers before decoding, and again while decoding
because headers can lie. Together they bound the memory and CPU time one item
can cost. ``fidelity`` rides along: it is the one other per-service choice
``preprocess`` needs, and this object is what the service hands down.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .allowlists import AUDIO_CODECS, IMAGE_FORMATS, VIDEO_CODECS
from .defaults import (
    MAX_AUDIO_DECODED_BYTES,
    MAX_DECODE_CPU_S,
    MAX_DECODED_BYTES,
    MAX_ITEM_BYTES,
    MAX_VIDEO_DECODE_PIXELS,
)

#: ``exact``: the reference's pixels. ``fast``: photos decoded at a reduced JPEG
#: scale and resized by torch (encoders/media/image.py); close, not identical.
Fidelity = Literal["exact", "fast"]
FIDELITIES: tuple[Fidelity, ...] = ("exact", "fast")


@dataclass(frozen=True)
class MediaLimits:
    """Caps applied by ``encoders.media.preprocess``; defaults suit a public API."""

    #: Raw input size, any modality.
    max_bytes: int = MAX_ITEM_BYTES
    #: Decoded still-image pixels (width × height), read from the header before
    #: decoding: the decompression-bomb cap. Pillow's own bomb check (at
    #: ``Image.MAX_IMAGE_PIXELS``, 89.5 MP) is also mapped to ``too_large``.
    max_pixels: int = 50_000_000
    #: Longest side of a still image (image, thermal, depth).
    max_image_side: int = 20_000
    #: long side / short side of a still image or a video frame; resizing the short
    #: side to 224 makes the long side 224 × this, so it bounds the resized buffer.
    max_aspect_ratio: float = 20.0
    #: Audio duration, from the container header and again while decoding.
    max_audio_seconds: float = 300.0
    max_audio_channels: int = 8
    max_audio_sample_rate: int = 192_000
    #: Below this a "sample rate" is not audio (a 7 Hz WAV is 1600 samples of 228 s).
    min_audio_sample_rate: int = 1_000
    #: Reduced-rate resampling kernel size (new × (orig + 2·width) taps); refuses
    #: rates such as 44101 Hz whose gcd with 16 kHz is tiny.
    max_resample_kernel: int = 4_000_000
    #: Video duration (frame count / average fps) and frame count.
    max_video_seconds: float = 300.0
    max_video_frames: int = 18_000
    #: Pixels of one decoded video frame (4096 × 2160).
    max_video_pixels: int = 4096 * 2160
    #: IMU samples per channel before the pad/crop to 2000.
    max_imu_samples: int = 200_000
    #: Decoded bytes one item may hold at once, computed from its headers before
    #: decoding and reserved from the process's memory budget (``guard.py``).
    max_decoded_bytes: int = MAX_DECODED_BYTES
    #: The same for audio: the three clip windows and the resampler's working set.
    max_audio_decoded_bytes: int = MAX_AUDIO_DECODED_BYTES
    #: Pixels a video may cost to decode (frames decoded × frame pixels), counted from
    #: the keyframe layout before decoding: one keyframe followed by thousands of
    #: P-frames decodes them all to reach the last sampled frame.
    max_video_decode_pixels: int = MAX_VIDEO_DECODE_PIXELS
    #: CPU seconds one item's decoding may take (the decoding thread's own time):
    #: the backstop for costs the headers do not show.
    max_decode_cpu_s: float = MAX_DECODE_CPU_S
    #: Decoders FFmpeg may open (FFmpeg's ``codec_whitelist``); anything else is
    #: ``unsupported_codec``. Names are FFmpeg's decoder names.
    video_codecs: tuple[str, ...] = VIDEO_CODECS
    audio_codecs: tuple[str, ...] = AUDIO_CODECS
    #: Pillow formats a still image may be (the ones the sniffer accepts).
    image_formats: tuple[str, ...] = IMAGE_FORMATS
    #: Still-image preprocessing: the reference's exact pixels, or the fast mode.
    fidelity: Fidelity = "exact"

    def __post_init__(self) -> None:
        if self.fidelity not in FIDELITIES:
            raise ValueError(
                f"MediaLimits.fidelity must be one of {FIDELITIES}, got {self.fidelity!r}"
            )
        for name, value in vars(self).items():
            if name == "fidelity" or isinstance(value, tuple):
                continue
            if value <= 0:
                raise ValueError(f"MediaLimits.{name} must be > 0, got {value}")
        if self.max_aspect_ratio < 1.0:
            raise ValueError(
                f"MediaLimits.max_aspect_ratio must be >= 1, got {self.max_aspect_ratio}"
            )
