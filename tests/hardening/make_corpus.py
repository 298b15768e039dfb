"""Hostile media corpus: bytes (and content parts) that the API must refuse with a 400.

    python -m tests.hardening.make_corpus OUT_DIR      # writes OUT_DIR/<case>.bin + manifest.json

`cases()` returns the same corpus in memory (the suite uses it directly). Every case is a
chat content part carrying the bytes as a `data:` URL (or `input_audio`), across the six
modalities: truncated and corrupt files of every supported format, wrong magic bytes,
formats sent to the wrong modality, decompression bombs and 100k x 100k headers, a GIF of
thousands of frames, audio with absurd rates / channel counts / hour-long durations,
video without a video stream, without frames or gigantic, video built against the
frame-selective decoder (frames that grow past the limit after a keyframe it seeks to,
a header claiming frames that do not decode), IMU with NaN/inf or bad shapes,
base64 that is not base64, data: URLs with the wrong media type, and empty bodies.
Each case is small on the wire (the worst decompress to gigabytes if decoded naively).
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import math
import random
import struct
import sys
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import av
import numpy as np
from PIL import Image

from encoders.media.sniff import MIME_TYPES
from harness.bombs import jpeg2000_video, long_gop_video, silent_audio
from harness.media import remux_audio, write_audio, write_video

# data: URL media types per format (what a client would honestly declare)
MIME = MIME_TYPES
IMAGE_FORMATS = ("png", "jpeg", "gif", "webp", "bmp", "tiff")
AUDIO_FORMATS = ("wav", "flac", "mp3", "ogg", "m4a")
VIDEO_FORMATS = ("mp4", "mov", "mkv", "webm", "avi")
PART_OF = {  # modality -> content part type
    "image": "image_url",
    "thermal": "thermal_url",
    "depth": "depth_url",
    "audio": "audio_url",
    "video": "video_url",
    "imu": "imu_url",
}


@dataclass(frozen=True)
class Case:
    name: str
    modality: str
    part: dict[str, Any]  # the OpenAI content part sent as-is
    raw: bytes  # the media bytes (empty for cases that are not about bytes)

    @property
    def size(self) -> int:
        return len(json.dumps(self.part))


def data_url(data: bytes, media_type: str) -> str:
    return f"data:{media_type};base64,{base64.b64encode(data).decode()}"


def url_case(name: str, modality: str, data: bytes, media_type: str) -> Case:
    kind = PART_OF[modality]
    return Case(name, modality, {"type": kind, kind: {"url": data_url(data, media_type)}}, data)


def raw_url_case(name: str, modality: str, url: str) -> Case:
    kind = PART_OF[modality]
    return Case(name, modality, {"type": kind, kind: {"url": url}}, b"")


# --- valid seeds (small, generated; the corpus breaks them) ---


@cache
def image_seed(fmt: str) -> bytes:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format=fmt.upper())
    return out.getvalue()


_AV_AUDIO = {  # format -> (container, codec)
    "wav": ("wav", "pcm_s16le"),
    "flac": ("flac", "flac"),
    "mp3": ("mp3", "libmp3lame"),
    "ogg": ("ogg", "libopus"),
    "m4a": ("ipod", "aac"),
}


def encode_audio(fmt: str, seconds: float, rate: int = 16000, tone: bool = True) -> bytes:
    """A mono 440 Hz tone (or silence) of ``seconds`` in format ``fmt``."""
    container, codec = _AV_AUDIO[fmt]
    total = int(seconds * rate)

    def chunks(size: int = 1024) -> Iterator[np.ndarray]:
        for start in range(0, total, size):
            x = np.arange(start, min(start + size, total)) / rate
            wave = 0.3 * np.sin(2 * math.pi * 440 * x) if tone else np.zeros(len(x))
            yield wave[None, :]  # [1, n]: mono

    return write_audio(chunks(), rate=rate, codec=codec, container=container)


@cache
def audio_seed(fmt: str) -> bytes:
    return encode_audio(fmt, 2.5)


_AV_VIDEO = {  # format -> (container, codec)
    "mp4": ("mp4", "mpeg4"),
    "mov": ("mov", "mpeg4"),
    "mkv": ("matroska", "mpeg4"),
    "webm": ("webm", "libvpx"),
    "avi": ("avi", "mjpeg"),
    "avi-mpeg4": ("avi", "mpeg4"),
}


def encode_video(
    fmt: str, frames: int = 12, size: tuple[int, int] = (64, 48), noise: bool = True
) -> bytes:
    container, codec = _AV_VIDEO[fmt]
    rng = np.random.default_rng(1)
    flat = np.full((size[1], size[0], 3), 90, dtype=np.uint8)
    pictures = (
        rng.integers(0, 255, flat.shape, dtype=np.uint8) if noise else flat for _ in range(frames)
    )
    pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
    return write_video(
        pictures, rate=6, codec=codec, container=container, pix_fmt=pix_fmt, size=size
    )


@cache
def video_seed(fmt: str) -> bytes:
    return encode_video(fmt)


def npy_bytes(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    np.save(out, array, allow_pickle=False)
    return out.getvalue()


@cache
def imu_seed(fmt: str) -> bytes:
    values = np.random.default_rng(2).standard_normal((6, 2000)).astype(np.float32)
    if fmt == "npy":
        return npy_bytes(values)
    rows = ["ax,ay,az,gx,gy,gz", *(",".join(f"{v:.4f}" for v in col) for col in values.T)]
    return ("\n".join(rows) + "\n").encode()


def seed(fmt: str) -> bytes:
    if fmt in IMAGE_FORMATS:
        return image_seed(fmt)
    if fmt in AUDIO_FORMATS:
        return audio_seed(fmt)
    if fmt in VIDEO_FORMATS:
        return video_seed(fmt)
    return imu_seed(fmt)


def modality_of(fmt: str) -> str:
    if fmt in IMAGE_FORMATS:
        return "image"
    if fmt in AUDIO_FORMATS:
        return "audio"
    if fmt in VIDEO_FORMATS:
        return "video"
    return "imu"


# --- damage: truncation and corruption of every format ---


def truncations(data: bytes) -> Iterator[tuple[str, bytes]]:
    for label, cut in (("1b", 1), ("8b", 8), ("16b", 16), ("10pct", len(data) // 10)):
        yield f"trunc-{label}", data[:cut]
    yield "trunc-half", data[: len(data) // 2]


def corruptions(data: bytes, rng: random.Random) -> Iterator[tuple[str, bytes]]:
    # Keep the magic (first 12 bytes), then garbage: the sniffer says "yes", the decoder must not.
    garbage = bytes(rng.getrandbits(8) for _ in range(max(64, len(data) - 12)))
    yield "garbage-after-magic", data[:12] + garbage
    yield "zeros-after-magic", data[:12] + b"\x00" * max(64, len(data) - 12)


def damaged_cases() -> Iterator[Case]:
    rng = random.Random(7)
    for fmt in (*IMAGE_FORMATS, *AUDIO_FORMATS, *VIDEO_FORMATS):
        data, modality = seed(fmt), modality_of(fmt)
        for label, broken in (*truncations(data), *corruptions(data, rng)):
            yield url_case(f"{fmt}-{label}", modality, broken, MIME[fmt])
    for modality in ("thermal", "depth"):
        for fmt in ("png", "jpeg"):
            for label, broken in truncations(image_seed(fmt)):
                yield url_case(f"{modality}-{fmt}-{label}", modality, broken, MIME[fmt])


def wrong_magic_cases() -> Iterator[Case]:
    magics = {
        "png-as-gif": (b"GIF89a", "png"),
        "jpeg-as-png": (b"\x89PNG\r\n\x1a\n", "jpeg"),
        "png-as-jpeg": (b"\xff\xd8\xff\xe0", "png"),
        "gif-as-bmp": (b"BM", "gif"),
        "wav-as-flac": (b"fLaC", "wav"),
        "flac-as-ogg": (b"OggS", "flac"),
        "mp3-as-wav": (b"RIFF\x00\x00\x00\x00WAVE", "mp3"),
        "mp4-as-mkv": (b"\x1a\x45\xdf\xa3", "mp4"),
        "avi-as-mp4": (b"\x00\x00\x00\x18ftypisom", "avi"),
        "npy-as-png": (b"\x89PNG\r\n\x1a\n", "npy"),
    }
    for name, (magic, fmt) in magics.items():
        data = seed(fmt)
        forged = magic + data[len(magic) :]
        declared = name.split("-as-")[1]
        yield url_case(f"magic-{name}", modality_of(fmt), forged, MIME[declared])
    for name, blob in {
        "text": b"hello, this is not media at all\n" * 8,
        "html": b"<!doctype html><html><body>hi</body></html>",
        "elf": b"\x7fELF\x02\x01\x01" + b"\x00" * 100,
        "zip": b"PK\x03\x04" + b"\x00" * 100,
        "pdf": b"%PDF-1.7\n" + b"\x00" * 100,
    }.items():
        for modality in PART_OF:
            yield url_case(f"foreign-{name}-as-{modality}", modality, blob, "image/png")


def wrong_modality_cases() -> Iterator[Case]:
    """A valid file of one modality sent as another: refused by type, never decoded."""
    for fmt in (*IMAGE_FORMATS, *AUDIO_FORMATS, *VIDEO_FORMATS, "npy", "csv"):
        own = modality_of(fmt)
        for modality in ("image", "audio", "video", "imu"):
            if modality == own or (own == "video" and modality == "audio"):
                continue  # a video container may legitimately carry audio
            yield url_case(f"{fmt}-sent-as-{modality}", modality, seed(fmt), MIME[fmt])


def data_url_cases() -> Iterator[Case]:
    png = image_seed("png")
    wav = audio_seed("wav")
    yield url_case("declared-jpeg-is-png", "image", png, "image/jpeg")
    yield url_case("declared-audio-is-png", "image", png, "audio/wav")
    yield url_case("declared-png-is-wav", "audio", wav, "image/png")
    yield url_case("declared-video-is-wav", "audio", wav, "video/mp4")
    yield url_case("declared-text-is-png", "image", png, "text/plain")
    yield url_case("declared-csv-is-npy", "imu", imu_seed("npy"), "text/csv")
    b64 = base64.b64encode(png).decode()
    for name, url in {
        "b64-garbage": "data:image/png;base64,!!!!not-base64!!!!",
        "b64-bad-padding": f"data:image/png;base64,{b64[:-3]}",
        "b64-unicode": "data:image/png;base64,\u00e9\u00e9\u00e9\u00e9",
        "b64-percent": "data:image/png;base64,%89PNG%0D%0A",
        "b64-urlsafe": "data:image/png;base64,"
        + base64.urlsafe_b64encode(b"\xfb\xff" * 60).decode(),
        "no-comma": "data:image/png;base64",
        "empty-b64": "data:image/png;base64,",
        "empty-plain": "data:image/png,",
        "plain-garbage": "data:image/png,hello%20world",
        "no-media-type": "data:;base64," + base64.b64encode(b"nothing").decode(),
        "ftp-url": "ftp://127.0.0.1/x.png",
        "javascript-url": "javascript:alert(1)",
        "file-url": "file:///etc/passwd",
        "relative-url": "x.png",
        "empty-url": "",
    }.items():
        yield raw_url_case(f"url-{name}", "image", url)
    for modality in ("audio", "video", "imu", "thermal", "depth"):
        yield raw_url_case(f"url-empty-b64-{modality}", modality, "data:;base64,")
        yield raw_url_case(f"url-garbage-b64-{modality}", modality, "data:x/y;base64,@@@@")
    audio_parts = {
        "input-audio-empty": {"data": "", "format": "wav"},
        "input-audio-not-b64": {"data": "%%%%", "format": "wav"},
        "input-audio-png": {"data": base64.b64encode(png).decode(), "format": "wav"},
        "input-audio-wrong-format": {"data": base64.b64encode(wav).decode(), "format": "mp3"},
        "input-audio-text": {"data": base64.b64encode(b"hello" * 40).decode(), "format": "wav"},
    }
    for name, payload in audio_parts.items():
        yield Case(name, "audio", {"type": "input_audio", "input_audio": payload}, b"")


# --- resource bombs: small on the wire, huge if decoded naively ---


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(width: int, height: int, rows: int | None = None) -> bytes:
    """A grayscale PNG whose IDAT inflates to width*height bytes of zeros (streamed)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    comp = zlib.compressobj(9)
    row = b"\x00" * (width + 1)
    body = [comp.compress(row) for _ in range(rows if rows is not None else height)]
    body.append(comp.flush())
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", b"".join(body))
        + _png_chunk(b"IEND", b"")
    )


def header_only(fmt: str, width: int, height: int) -> bytes:
    """A header claiming width x height, followed by a little garbage."""
    tail = b"\x00" * 256
    if fmt == "png":
        return png_bomb(width, height, rows=4)
    if fmt == "gif":
        gif_size = struct.pack("<HH", min(width, 65535), min(height, 65535))
        return b"GIF89a" + gif_size + b"\x00\x00\x00" + tail
    if fmt == "bmp":
        info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 2835, 2835, 0, 0)
        return b"BM" + struct.pack("<IHHI", 54 + len(tail), 0, 0, 54) + info + tail
    if fmt == "jpeg":
        sof = struct.pack(">HBHHB", 11, 8, min(height, 65535), min(width, 65535), 1)
        sof += b"\x01\x11\x00"
        return b"\xff\xd8\xff\xc0" + sof + tail
    if fmt == "tiff":
        entries = [(256, 4, 1, width), (257, 4, 1, height), (258, 3, 1, 8), (262, 3, 1, 1)]
        ifd = struct.pack("<H", len(entries))
        ifd += b"".join(struct.pack("<HHII", *e) for e in entries) + struct.pack("<I", 0)
        return b"II*\x00" + struct.pack("<I", 8) + ifd + tail
    # webp VP8L: 14-bit dimensions, the largest a header can claim
    bits = (max(1, min(width, 16384)) - 1) | ((max(1, min(height, 16384)) - 1) << 14)
    vp8l = b"\x2f" + struct.pack("<I", bits) + tail
    return (
        b"RIFF"
        + struct.pack("<I", 4 + 8 + len(vp8l))
        + b"WEBPVP8L"
        + struct.pack("<I", len(vp8l))
        + vp8l
    )


def gif_many_frames(frames: int, side: int = 64) -> bytes:
    images = [Image.new("P", (side, side), i % 256) for i in range(frames)]
    out = io.BytesIO()
    images[0].save(out, format="GIF", save_all=True, append_images=images[1:], duration=10)
    return out.getvalue()


def wav_header(
    rate: int, channels: int, bits: int = 16, data_len: int = 3200, body: int = 3200
) -> bytes:
    block = max(1, channels * bits // 8) & 0xFFFF
    fmt = struct.pack(
        "<HHIIHH", 1, channels & 0xFFFF, rate & 0xFFFFFFFF, (rate * block) & 0xFFFFFFFF, block, bits
    )
    chunks = b"fmt " + struct.pack("<I", 16) + fmt
    chunks += b"data" + struct.pack("<I", data_len & 0xFFFFFFFF) + b"\x00" * body
    return b"RIFF" + struct.pack("<I", (4 + len(chunks)) & 0xFFFFFFFF) + b"WAVE" + chunks


def bomb_cases() -> Iterator[Case]:
    yield url_case("png-bomb-20k", "image", png_bomb(20_000, 20_000), MIME["png"])
    yield url_case("png-bomb-20k-thermal", "thermal", png_bomb(20_000, 20_000), MIME["png"])
    yield url_case("png-bomb-depth", "depth", png_bomb(20_000, 20_000), MIME["png"])
    yield url_case("png-aspect-bomb", "image", png_bomb(200_000, 10, rows=10), MIME["png"])
    for fmt in IMAGE_FORMATS:
        for w, h in ((100_000, 100_000), (65_535, 65_535), (1, 100_000), (0, 0)):
            yield url_case(f"{fmt}-header-{w}x{h}", "image", header_only(fmt, w, h), MIME[fmt])
    yield url_case("gif-3000-frames", "video", gif_many_frames(3000), MIME["gif"])
    yield url_case("gif-3000-frames-as-video-mime", "video", gif_many_frames(3000), "video/mp4")
    # audio: absurd headers
    for rate in (0, 1, 7, 44_101, 10_000_000, 2**32 - 1):
        yield url_case(f"wav-rate-{rate}", "audio", wav_header(rate, 1), MIME["wav"])
    for channels in (0, 9, 255, 65_535):
        yield url_case(
            f"wav-channels-{channels}", "audio", wav_header(16000, channels), MIME["wav"]
        )
    for bits in (0, 3, 64, 65_535):
        yield url_case(f"wav-bits-{bits}", "audio", wav_header(16000, 1, bits), MIME["wav"])
    hour = 3600 * 16000 * 2
    yield url_case("wav-claims-1h", "audio", wav_header(16000, 1, data_len=hour), MIME["wav"])
    yield url_case(
        "wav-claims-4gib", "audio", wav_header(16000, 1, data_len=2**32 - 1), MIME["wav"]
    )
    seconds = 400  # over the 300 s cap, and really there: 3.2 MB of 8-bit samples
    pcm = wav_header(8000, 1, 8, seconds * 8000, seconds * 8000)
    yield url_case("wav-400s-8khz", "audio", pcm, MIME["wav"])
    yield url_case("flac-hour-silence", "audio", hour_flac(), MIME["flac"])
    yield url_case("wav-no-data", "audio", wav_header(16000, 1, data_len=0, body=0), MIME["wav"])
    yield url_case("wav-one-sample", "audio", wav_header(16000, 1, data_len=2, body=2), MIME["wav"])
    # video
    yield url_case("mp4-audio-only", "video", audio_only_mp4(), MIME["mp4"])
    yield url_case("mkv-audio-only", "video", audio_only_mkv(), MIME["mkv"])
    for fmt in ("mp4", "mkv", "avi"):
        yield url_case(f"{fmt}-zero-frames", "video", encode_video(fmt, frames=0), MIME[fmt])
    yield url_case(
        "avi-giant-frame", "video", encode_video("avi", 2, (8192, 8192), noise=False), MIME["avi"]
    )
    yield url_case(
        "mkv-giant-frame", "video", encode_video("mkv", 1, (4800, 4800), noise=False), MIME["mkv"]
    )
    yield url_case("mp4-giant-header", "video", patch_mp4_dims(video_seed("mp4")), MIME["mp4"])
    yield url_case(
        "avi-333s-tiny-frames",
        "video",
        encode_video("avi", 2_000, (16, 16), noise=False),
        MIME["avi"],
    )


def hour_flac() -> bytes:
    return encode_audio("flac", 3600.0, rate=2000, tone=False)


def audio_only_mp4() -> bytes:
    return remux_audio(audio_seed("m4a"), "mp4")


def audio_only_mkv() -> bytes:
    return remux_audio(audio_seed("ogg"), "matroska")


def patch_mp4_dims(data: bytes) -> bytes:
    """Rewrite the track header (tkhd) and sample entry sizes to 60000 x 60000."""
    out = bytearray(data)
    i = out.find(b"tkhd")
    if i > 0:
        out[i + 4 + 76 : i + 4 + 84] = struct.pack(">II", 60000 << 16, 60000 << 16)
    j = out.find(b"mp4v")
    if j > 0:
        out[j + 4 + 24 : j + 4 + 28] = struct.pack(">HH", 60000, 60000)
    return bytes(out)


def _avi_stream(segments: list[tuple[int, tuple[int, int], bool]]) -> bytes:
    """One AVI video stream spliced from MPEG-4 segments of (frames, size, noise); each
    segment starts with a keyframe carrying its own size (the header has the first's)."""
    parts = [encode_video("avi-mpeg4", frames, size, noise) for frames, size, noise in segments]
    out = io.BytesIO()
    sources = [av.open(io.BytesIO(part)) for part in parts]
    try:
        with av.open(out, "w", format="avi") as dst:
            stream = dst.add_stream_from_template(sources[0].streams.video[0])
            index = 0
            for src in sources:
                for packet in src.demux(src.streams.video[0]):
                    if not packet.size:
                        continue
                    packet.stream, packet.pts, packet.dts = stream, index, index
                    dst.mux(packet)
                    index += 1
    finally:
        for src in sources:
            src.close()
    return out.getvalue()


def _claims_frames(data: bytes, frames: int) -> bytes:
    """AVI whose stream header (strh dwLength) claims ``frames`` frames."""
    out = bytearray(data)
    at = data.find(b"strh") + 8 + 32  # chunk id, size, then fccType … dwStart
    out[at : at + 4] = struct.pack("<I", frames)
    return bytes(out)


def seek_cases() -> Iterator[Case]:
    """Video made to defeat frame-selective decoding (encoders/media/video_decode.py).

    Streams that merely defeat seeking but decode (no keyframe after frame 0, pts that
    jump backwards, packets without pts) are valid input: they are in the unit suite
    (tests/unit/encoders/media/test_media_video_seek.py), which checks the fallback's
    output. These must be refused, after the decoder has jumped."""
    # 64×48 in the header and for 4 s, then a keyframe at 4800×4800: the sampler's last
    # frames sit after it, so the seek lands on frames over the pixel limit.
    grows = _avi_stream([(24, (64, 48), True), (2, (4800, 4800), False)])
    yield url_case("avi-frames-grow-after-keyframe", "video", grows, MIME["avi"])
    # The header claims 900 frames; every frame chunk is zeros (nothing decodes).
    hollow = bytearray(_claims_frames(encode_video("avi-mpeg4", 24), 900))
    at = hollow.find(b"movi")
    while (at := hollow.find(b"00dc", at + 4)) > 0:
        (size,) = struct.unpack("<I", hollow[at + 4 : at + 8])
        hollow[at + 8 : at + 8 + size] = bytes(size)
    yield url_case("avi-claims-900-frames-none-decode", "video", bytes(hollow), MIME["avi"])


def decode_cost_cases() -> Iterator[Case]:
    """Small files that decode into far more than they weigh (harness/bombs.py): refused
    before decoding, or decoded within the item's reservation."""
    yield url_case("flac-299s-8ch-192khz-silence", "audio", silent_audio(), MIME["flac"])
    yield url_case("mp4-1080p-17400-frames-one-keyframe", "video", long_gop_video(), MIME["mp4"])
    yield url_case("mkv-jpeg2000-video", "video", jpeg2000_video(), MIME["mkv"])


def imu_cases() -> Iterator[Case]:
    good = np.random.default_rng(3).standard_normal((6, 2000)).astype(np.float32)
    arrays: dict[str, np.ndarray] = {}
    for label, value in (("nan", np.nan), ("inf", np.inf), ("neg-inf", -np.inf)):
        bad = good.copy()
        bad[2, 100] = value
        arrays[f"npy-{label}"] = bad
        arrays[f"npy-all-{label}"] = np.full((6, 2000), value, dtype=np.float32)
    arrays["npy-float64-nan"] = np.full((6, 50), np.nan)
    arrays["npy-5-channels"] = good[:5]
    arrays["npy-7-channels"] = np.concatenate([good, good[:1]])
    arrays["npy-3d"] = good.reshape(6, 20, 100)
    arrays["npy-1d"] = good.reshape(-1)
    arrays["npy-empty"] = np.zeros((6, 0), dtype=np.float32)
    arrays["npy-scalar"] = np.array(1.0, dtype=np.float32)
    arrays["npy-strings"] = np.array([["a"] * 10] * 6)
    arrays["npy-complex"] = good[:, :10].astype(np.complex64)
    arrays["npy-bool"] = good > 0
    arrays["npy-too-many-samples"] = np.zeros((6, 250_000), dtype=np.float16)
    for name, array in arrays.items():
        yield url_case(f"imu-{name}", "imu", npy_bytes(array), MIME["npy"])
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (6, 1000000000000), }"
    forged = b"\x93NUMPY\x01\x00" + struct.pack("<H", 118) + header.ljust(117).encode() + b"\n"
    yield url_case("imu-npy-shape-1e12", "imu", forged + b"\x00" * 64, MIME["npy"])
    pickled = b"\x93NUMPY\x01\x00" + struct.pack("<H", 118)
    pickled += "{'descr': '|O', 'fortran_order': False, 'shape': (6,), }".ljust(117).encode()
    yield url_case("imu-npy-object-pickle", "imu", pickled + b"\n\x80\x04N.", MIME["npy"])
    csvs = {
        "csv-nan": "ax,ay,az,gx,gy,gz\n" + "nan,0,0,0,0,0\n" * 50,
        "csv-inf": "ax,ay,az,gx,gy,gz\n" + "inf,-inf,0,0,0,0\n" * 50,
        "csv-words": "ax,ay,az,gx,gy,gz\n" + "a,b,c,d,e,f\n" * 50,
        "csv-5-cols": "ax,ay,az,gx,gy\n" + "0,0,0,0,0\n" * 50,
        "csv-ragged": "ax,ay,az,gx,gy,gz\n" + "0,0,0\n0,0,0,0,0,0,0,0\n" * 25,
        "csv-header-only": "ax,ay,az,gx,gy,gz\n",
        "csv-1e400": "ax,ay,az,gx,gy,gz\n" + "1e400,0,0,0,0,0\n" * 50,
        "csv-binary": "ax,ay,az,gx,gy,gz\n\x00\x01\x02\x03\n",
    }
    for name, text in csvs.items():
        yield url_case(f"imu-{name}", "imu", text.encode(), MIME["csv"])


def empty_cases() -> Iterator[Case]:
    media_type = {
        "image": "image/png",
        "thermal": "image/png",
        "depth": "image/png",
        "audio": "audio/wav",
        "video": "video/mp4",
        "imu": "application/x-npy",
    }
    for modality in PART_OF:
        yield url_case(f"empty-{modality}", modality, b"", media_type[modality])
        yield url_case(f"one-byte-{modality}", modality, b"\x00", media_type[modality])


GENERATORS: tuple[Callable[[], Iterator[Case]], ...] = (
    damaged_cases,
    wrong_magic_cases,
    wrong_modality_cases,
    data_url_cases,
    bomb_cases,
    decode_cost_cases,
    seek_cases,
    imu_cases,
    empty_cases,
)


@cache
def cases() -> tuple[Case, ...]:
    out: list[Case] = []
    seen: set[str] = set()
    for generate in GENERATORS:
        for case in generate():
            if case.name in seen:
                raise ValueError(f"duplicate corpus case {case.name}")
            seen.add(case.name)
            out.append(case)
    return tuple(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    manifest = []
    for case in cases():
        (args.out / f"{case.name}.json").write_text(json.dumps(case.part))
        manifest.append({"name": case.name, "modality": case.modality, "bytes": len(case.raw)})
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    print(f"{len(manifest)} cases in {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
