"""Media type detection from magic bytes (no parsing beyond the first bytes),
and which types each modality takes.

The one sniffer of the project. The gateway uses it to refuse wrong types
before a job reaches a worker (so this module imports nothing beyond the
standard library: the gateway has no torch); the audio and video loaders use
it to pick the FFmpeg demuxer explicitly, so that FFmpeg never probes its whole
demuxer list (some of which, like HLS or concat, open further URLs or files
named inside the data). Content-Type headers and data: URL types are claims;
the magic bytes decide, and ``compatible`` says whether a claim may stand.
"""

from __future__ import annotations

import re

# Brands in an ISO-BMFF `ftyp` box that mean audio-only MPEG-4 (iTunes audio/audiobooks).
_M4A_BRANDS = (b"M4A ", b"M4B ", b"M4P ")
_QT_BRANDS = (b"qt  ",)
# One CSV row of numbers separated by commas, semicolons, tabs or spaces. Only used
# to recognise text; parsing (and rejecting NaN/inf) is imu.py's job.
_NUMBER_LINE = re.compile(rb"^\s*[-+0-9.eE]+(?:\s*[,;\t ]\s*[-+0-9.eE]+)*\s*[,;]?\s*$")


def sniff(data: bytes) -> str | None:
    """Name the media type of ``data`` from its magic bytes, or ``None``.

    Names: jpeg png gif webp bmp tiff | wav flac mp3 aac ogg m4a | mp4 mov mkv
    webm avi | npy csv. ``webm`` may hold audio or video; so may ``mp4``/``ogg``.
    """
    head = bytes(data[:64])
    if len(head) < 4:
        return _sniff_text(bytes(data))
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head.startswith(b"BM") and len(head) >= 14:
        return "bmp"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    if head[:4] in (b"RIFF", b"RF64") and len(head) >= 12:
        return {b"WEBP": "webp", b"WAVE": "wav", b"AVI ": "avi"}.get(head[8:12])
    if head.startswith(b"fLaC"):
        return "flac"
    if head.startswith(b"OggS"):
        return "ogg"
    if head.startswith(b"\x93NUMPY"):
        return "npy"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        # EBML: the DocType element says webm or matroska within the first bytes.
        return "webm" if b"webm" in bytes(data[:64]) else "mkv"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in _M4A_BRANDS:
            return "m4a"
        return "mov" if brand in _QT_BRANDS else "mp4"
    if head[4:8] in (b"moov", b"mdat", b"wide", b"free", b"skip"):
        return "mov"  # QuickTime files that predate the ftyp box
    if head.startswith(b"ID3"):
        return "mp3"
    if head[0] == 0xFF and head[1] & 0xF6 == 0xF0:
        return "aac"  # ADTS: a 12-bit sync word, then layer bits 00
    if head[0] == 0xFF and head[1] & 0xE0 == 0xE0 and head[1] & 0x06:
        return "mp3"  # MPEG audio: an 11-bit frame sync, then layer I, II or III (00 is reserved)
    return _sniff_text(bytes(data[:4096]))


def _sniff_text(sample: bytes) -> str | None:
    """``csv`` when the sample is lines of delimited numbers (one header line allowed)."""
    if not sample or b"\x00" in sample:
        return None
    lines = [line for line in sample.splitlines() if line.strip()]
    if len(sample) >= 4096:
        lines = lines[:-1]  # the sample may cut the last line mid-number
    if lines and not _NUMBER_LINE.match(lines[0]):
        lines = lines[1:]  # a header row of channel names
    if not lines or not all(_NUMBER_LINE.match(line) for line in lines):
        return None
    return "csv"


MIME_TYPES: dict[str, str] = {
    "jpeg": "image/jpeg",
    "png": "image/png",
    "gif": "image/gif",
    "webp": "image/webp",
    "bmp": "image/bmp",
    "tiff": "image/tiff",
    "wav": "audio/wav",
    "flac": "audio/flac",
    "mp3": "audio/mpeg",
    "aac": "audio/aac",
    "ogg": "audio/ogg",
    "m4a": "audio/mp4",
    "mp4": "video/mp4",
    "mov": "video/quicktime",
    "mkv": "video/x-matroska",
    "webm": "video/webm",
    "avi": "video/x-msvideo",
    "npy": "application/x-npy",
    "csv": "text/csv",
}

_IMAGES = frozenset({"jpeg", "png", "gif", "webp", "bmp", "tiff"})
# Audio may come in a video container (its audio track is used); MPEG-4 and Ogg
# brands say little about the tracks, so both modalities take them.
_AUDIO = frozenset({"wav", "flac", "mp3", "aac", "ogg", "m4a", "mp4", "mov", "webm", "mkv"})
_VIDEO = frozenset({"mp4", "mov", "webm", "mkv", "avi", "m4a", "ogg"})

# The sniffed types each modality's decoder takes.
ACCEPTED: dict[str, frozenset[str]] = {
    "image": _IMAGES,
    "thermal": _IMAGES,
    "depth": _IMAGES,  # a single-channel (disparity) image; the decoder checks the mode
    "audio": _AUDIO,
    "video": _VIDEO,
    "imu": frozenset({"npy", "csv"}),
}


def compatible(declared: str | None, sniffed: str) -> bool:
    """Whether a claimed MIME type agrees with the sniffed type, by major type: an
    `image/jpg` claim for PNG bytes is fine, `image/*` for an MP4 is not."""
    if not declared:
        return True
    claim = declared.split("/", 1)[0].strip().lower()
    if claim not in ("image", "audio", "video"):
        return True  # application/octet-stream and friends claim nothing
    if claim == MIME_TYPES[sniffed].split("/", 1)[0]:
        return True
    return claim == "audio" and sniffed in _AUDIO  # audio in an MP4/WebM container
