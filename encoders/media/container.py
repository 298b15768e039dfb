"""Opening untrusted audio/video bytes with PyAV (FFmpeg), safely.

The demuxer is chosen from the magic bytes (``sniff``) out of an allow-list and
passed to FFmpeg explicitly: FFmpeg never probes, so playlist-style demuxers
(HLS, concat, image2 patterns) that open further files or URLs cannot be reached.
FFmpeg errors are mapped to ``MediaError`` here, once.

Decoders come from an allow-list too (``MediaLimits.video_codecs`` /
``audio_codecs``), handed to FFmpeg as its own ``codec_whitelist`` option: on
the demuxer (the decoders ``avformat_find_stream_info`` opens while probing)
and on the stream's decoder (``open_decoder``). FFmpeg ships hundreds of
decoders, JPEG 2000 among them, and a container can name any of them; only the
common ones for each modality are reachable from a request. Each decoder runs
on the calling thread (``thread_count`` 1): the preprocessing pool supplies the
parallelism, and the decode guard's CPU clock sees all of the work.

Demuxer options per container (``AUDIO_OPTIONS``): ``probesize`` bounds how
much ``avformat_find_stream_info`` reads (and decodes) to fill in stream
parameters; FFmpeg's default is 5 MB. Where a demuxer's own header already
names everything the decoders need, 32 bytes (FFmpeg's minimum) gives the same
stream parameters, the same declared durations and the same samples
(tests/unit/encoders/media/test_media_probe.py), and opening a 10 s WAV drops
from ~23 ms of CPU to under 1 ms (larger WAV packets, the demuxer's
``max_size``, made opening dearer again: probing then reads a whole packet).
Raw AAC (ADTS) keeps the defaults: its declared duration
is estimated from the probed frames. Video keeps them too: the decoder's
reordering depth (``has_b_frames``), which the frame-selective decoder checks
timestamps against, comes from probing.
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
#: sniff() name → demuxer options for audio (absent: FFmpeg's defaults); module docstring.
AUDIO_OPTIONS: dict[str, dict[str, str]] = {
    name: {"probesize": "32"}
    for name in ("wav", "flac", "mp3", "ogg", "m4a", "mp4", "mov", "webm", "mkv")
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
    data: bytes,
    demuxers: dict[str, str],
    kind: str,
    options: dict[str, dict[str, str]] | None = None,
    codecs: tuple[str, ...] = (),
) -> Iterator[av.container.InputContainer]:
    """Open ``data`` with the demuxer its magic bytes name; closed on exit.

    ``options``: sniff() name → demuxer options (absent: FFmpeg's defaults).
    ``codecs``: the decoders FFmpeg may open while probing (empty: any)."""
    name = sniff(data)
    demuxer = demuxers.get(name or "")
    if demuxer is None:
        accepted = ", ".join(sorted(demuxers))
        raise MediaError(
            "unsupported_format", f"{kind} must be one of {accepted}; got {name or 'unknown data'}"
        )
    chosen = dict((options or {}).get(name or "", {}))
    chosen["format_whitelist"] = demuxer
    if codecs:
        chosen["codec_whitelist"] = ",".join(codecs)
    try:
        container = av.open(io.BytesIO(data), mode="r", format=demuxer, options=chosen)
    except av.error.FFmpegError as exc:
        raise MediaError("corrupt", f"{kind} container could not be read: {exc}") from exc
    try:
        yield container
    except av.error.FFmpegError as exc:
        raise MediaError("corrupt", f"{kind} could not be decoded: {exc}") from exc
    finally:
        container.close()


def open_decoder(stream: av.stream.Stream, codecs: tuple[str, ...], kind: str) -> None:
    """Refuse a stream whose decoder is not in ``codecs``; open the allowed one with
    FFmpeg's ``codec_whitelist`` set and one thread (module docstring)."""
    codec = stream.codec_context
    name = codec.codec.name if codec.codec is not None else "unknown"
    if name not in codecs:
        raise MediaError(
            "unsupported_codec",
            f"{kind} codec {name!r} is not accepted; accepted: {', '.join(codecs)}",
        )
    codec.thread_count = 1
    codec.options = {**(codec.options or {}), "codec_whitelist": ",".join(codecs)}
    try:
        codec.open()
    except av.error.FFmpegError as exc:
        raise MediaError("unsupported_codec", f"{kind} codec {name!r} could not be opened") from exc
