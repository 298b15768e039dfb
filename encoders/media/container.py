"""Opening untrusted audio/video bytes with PyAV (FFmpeg), safely.

The demuxer is chosen from the magic bytes (``sniff``) out of an allow-list and
passed to FFmpeg explicitly: FFmpeg never probes, so playlist-style demuxers
(HLS, concat, image2 patterns) that open further files or URLs cannot be reached.
FFmpeg errors are mapped to ``MediaError`` here, once.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager

import av

from .errors import MediaError
from .sniff import sniff

# sniff() name → FFmpeg demuxer.
AUDIO_DEMUXERS = {
    "wav": "wav",
    "flac": "flac",
    "mp3": "mp3",
    "aac": "aac",
    "ogg": "ogg",
    "m4a": "mov",
    "mp4": "mov",
    "mov": "mov",
    "webm": "matroska",
    "mkv": "matroska",
}
VIDEO_DEMUXERS = {
    "mp4": "mov",
    "mov": "mov",
    "m4a": "mov",
    "webm": "matroska",
    "mkv": "matroska",
    "avi": "avi",
    "ogg": "ogg",
}


@contextmanager
def open_container(
    data: bytes, demuxers: dict[str, str], kind: str
) -> Iterator[av.container.InputContainer]:
    """Open ``data`` with the demuxer its magic bytes name; closed on exit."""
    name = sniff(data)
    demuxer = demuxers.get(name or "")
    if demuxer is None:
        accepted = ", ".join(sorted(demuxers))
        raise MediaError(
            "unsupported_format", f"{kind} must be one of {accepted}; got {name or 'unknown data'}"
        )
    try:
        container = av.open(io.BytesIO(data), mode="r", format=demuxer)
    except av.error.FFmpegError as exc:
        raise MediaError("corrupt", f"{kind} container could not be read: {exc}") from exc
    try:
        yield container
    except av.error.FFmpegError as exc:
        raise MediaError("corrupt", f"{kind} could not be decoded: {exc}") from exc
    finally:
        container.close()
