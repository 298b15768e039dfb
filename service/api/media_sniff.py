"""What a media file is, from its first bytes, and which files each modality takes.

Content-Type headers and data: URL types are claims; the magic bytes decide.
The table is deliberately small: the formats the encoders decode (it mirrors
`encoders.media.sniff`, which the gateway cannot import: that package needs torch).
"""

from __future__ import annotations

_IMAGE = frozenset(
    {"image/jpeg", "image/png", "image/gif", "image/webp", "image/bmp", "image/tiff"}
)
_AUDIO = frozenset(
    {"audio/wav", "audio/flac", "audio/mpeg", "audio/aac", "audio/ogg", "audio/mp4"}
    # audio tracks in video containers
    | {"video/mp4", "video/quicktime", "video/webm", "video/x-matroska"}
)
_VIDEO = frozenset(
    {"video/mp4", "video/quicktime", "video/webm", "video/x-matroska", "video/x-msvideo"}
    | {"audio/mp4", "audio/ogg"}  # MPEG-4 and Ogg brands say little about the tracks
)

ACCEPTED: dict[str, frozenset[str]] = {
    "image": _IMAGE,
    "thermal": _IMAGE,
    "depth": _IMAGE,  # a single-channel (disparity) image; the encoder checks the mode
    "audio": _AUDIO,
    "video": _VIDEO,
    "imu": frozenset({"application/x-npy", "text/csv"}),
}

# (offset, magic, type) checked in order; containers with sub-types are handled below.
_SIGNATURES: tuple[tuple[int, bytes, str], ...] = (
    (0, b"\xff\xd8\xff", "image/jpeg"),
    (0, b"\x89PNG\r\n\x1a\n", "image/png"),
    (0, b"GIF87a", "image/gif"),
    (0, b"GIF89a", "image/gif"),
    (0, b"BM", "image/bmp"),
    (0, b"II*\x00", "image/tiff"),
    (0, b"MM\x00*", "image/tiff"),
    (0, b"fLaC", "audio/flac"),
    (0, b"ID3", "audio/mpeg"),
    (0, b"OggS", "audio/ogg"),
    (0, b"\x93NUMPY", "application/x-npy"),
)
_RIFF = {b"WAVE": "audio/wav", b"WEBP": "image/webp", b"AVI ": "video/x-msvideo"}
_AUDIO_BRANDS = {b"M4A ", b"M4B ", b"M4P "}


def sniff(data: bytes) -> str | None:
    """The media type the bytes carry, or None when unrecognised."""
    for offset, magic, media_type in _SIGNATURES:
        if data[offset : offset + len(magic)] == magic:
            return media_type
    if data[:4] in (b"RIFF", b"RF64") and len(data) >= 12:
        return _RIFF.get(data[8:12])
    if data[4:8] == b"ftyp":
        brand = data[8:12]
        if brand in _AUDIO_BRANDS:
            return "audio/mp4"
        return "video/quicktime" if brand == b"qt  " else "video/mp4"
    if data[4:8] in (b"moov", b"mdat", b"wide", b"free", b"skip"):
        return "video/quicktime"  # QuickTime files that predate the ftyp box
    if data[:4] == b"\x1a\x45\xdf\xa3":  # EBML: Matroska or its WebM profile
        return "video/webm" if b"webm" in data[:64] else "video/x-matroska"
    if len(data) >= 2 and data[0] == 0xFF:
        if data[1] & 0xF6 == 0xF0:  # ADTS sync word, layer 0
            return "audio/aac"
        if data[1] & 0xE0 == 0xE0:  # MPEG audio frame sync
            return "audio/mpeg"
    if _looks_like_text(data):
        return "text/csv"
    return None


def _looks_like_text(data: bytes) -> bool:
    head = data[:4096]
    if not head or b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut at the 4096-byte boundary is still text.
        return exc.start >= len(head) - 3
    return True


def major(media_type: str) -> str:
    return media_type.split("/", 1)[0].lower()


def compatible(declared: str | None, sniffed: str) -> bool:
    """Whether a claimed type agrees with the sniffed one (by major type: a
    `image/jpg` claim for PNG bytes is fine, `image/*` for an MP4 is not)."""
    if not declared:
        return True
    claim = major(declared)
    if claim not in ("image", "audio", "video"):
        return True  # application/octet-stream and friends claim nothing
    actual = major(sniffed)
    if claim == actual:
        return True
    # Audio in an MP4/WebM container sniffs as video.
    return claim == "audio" and sniffed in _AUDIO
