"""The one exception media preprocessing raises, and its reason codes.

Exception tree::

    Exception
    ├── MediaError(reason, message)   the item cannot be used: the client's fault
    ├── MediaBusy(message, retry_after)  its decoding does not fit the memory budget
    │                                    right now: the client may retry later
    └── MediaCancelled                nobody waits for the item any more

Foreign errors (Pillow, PyAV, NumPy) are mapped to a ``MediaError`` at the
boundary of the module that calls the library, with ``raise ... from exc``.
"""

from __future__ import annotations

from typing import Final

#: Reason codes and what each means. The gateway maps them to 400/413/422 bodies.
REASONS: Final[dict[str, str]] = {
    "empty": "no bytes were given",
    "unsupported_format": "the bytes are not a format accepted for this modality "
    "(or use a feature this service refuses, e.g. an odd sample rate)",
    "corrupt": "the format was recognised but the bytes could not be decoded",
    "too_large": "bytes, pixel count, frame size or decoded size over the configured limit",
    "too_long": "audio or video duration over the configured limit",
    "too_complex": "decoding would cost more work (decoded video pixels, CPU time) than allowed",
    "unsupported_codec": "the container holds a codec this service does not decode",
    "too_short": "audio shorter than one 25 ms analysis frame, a video with no frames, "
    "or IMU with no samples",
    "bad_dimensions": "image geometry the service refuses (side or aspect ratio over the limit)",
    "no_video_stream": "the container holds no video stream",
    "no_audio_stream": "the container holds no audio stream",
    "invalid_value": "values that are not finite numbers, or an array of the wrong shape",
}


class MediaError(Exception):
    """A media item that cannot be turned into a model input.

    ``reason`` is one of ``REASONS``; ``message`` is safe to show to the client.
    """

    def __init__(self, reason: str, message: str) -> None:
        if reason not in REASONS:
            raise ValueError(f"unknown MediaError reason {reason!r}; known: {sorted(REASONS)}")
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


class MediaBusy(Exception):
    """An item whose decoded size does not fit the process's memory budget now (it
    would fit an idle one): the service answers 429 with ``retry_after``."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


class MediaCancelled(Exception):
    """Decoding stopped between packets because its request went away."""
