"""Small test videos of every stream kind the frame-selective decoder must handle.

Each builder returns encoded bytes, made with PyAV in memory (nothing is
downloaded). The kinds cover what changes where decoding may start and which
frames can be skipped: B-frames or not, closed and open GOPs, a GOP longer than
the video, HEVC and VP9, variable frame rate, and a first timestamp that is not 0.
``HOSTILE`` holds streams made to defeat seeking; the decoder must fall back to
sequential decoding (or refuse) on them, within the usual time and memory.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from fractions import Fraction

import numpy as np

from harness.media import write_video

WIDTH, HEIGHT = 96, 64


def frames(count: int, width: int = WIDTH, height: int = HEIGHT, seed: int = 0) -> Iterator:
    """Moving gradients plus a little noise: real motion, so encoders use P/B prediction."""
    y, x = np.mgrid[0:height, 0:width]
    rng = np.random.default_rng(seed)
    for i in range(count):
        rgb = np.stack([(x * 3 + i * 4) % 256, (y * 3 + i * 2) % 256, (x + y + i * 7) % 256], -1)
        rgb = rgb + rng.integers(-12, 13, rgb.shape)
        yield np.clip(rgb, 0, 255).astype(np.uint8)


def encode(
    count: int,
    *,
    codec: str = "libx264",
    container: str = "mp4",
    rate: int = 15,
    options: dict[str, str] | None = None,
    pts: Callable[[int], int] | None = None,
    time_base: Fraction | None = None,
) -> bytes:
    """``count`` frames → encoded bytes; ``pts(i)`` in ``time_base`` units (default 1/rate)."""
    return write_video(
        frames(count), rate=rate, codec=codec, container=container, options=options, pts=pts,
        time_base=time_base,
    )  # fmt: skip


def x264(params: str) -> dict[str, str]:
    # scenecut=0: keyframes exactly every keyint frames, whatever the noise does.
    return {"x264-params": f"{params}:scenecut=0", "preset": "veryfast"}


KINDS: dict[str, Callable[[], bytes]] = {
    # 6 s at 15 fps, a keyframe every 15 frames: the ten sampled frames sit in 6 GOPs.
    "x264-bframes-closed": lambda: encode(90, options=x264("keyint=15:min-keyint=15:bframes=3")),
    "x264-no-bframes": lambda: encode(90, options=x264("keyint=15:min-keyint=15:bframes=0")),
    "x264-bframes-open": lambda: encode(
        90, options=x264("keyint=15:min-keyint=15:bframes=3:open-gop=1")
    ),
    "x264-long-gop": lambda: encode(90, options=x264("keyint=600:bframes=3")),
    # No IDR after the first frame: recovery points every 15 frames (periodic intra refresh).
    "x264-intra-refresh": lambda: encode(90, options=x264("keyint=15:intra-refresh=1:bframes=0")),
    "x265-open-gop": lambda: encode(
        90,
        codec="libx265",
        options={
            "x265-params": "keyint=15:min-keyint=15:bframes=3:open-gop=1:log-level=none",
            "preset": "ultrafast",
        },
    ),
    "vp9-webm": lambda: encode(
        90,
        codec="libvpx-vp9",
        container="webm",
        options={"g": "15", "deadline": "realtime", "cpu-used": "8"},
    ),
    # Frame durations of 40, 80 and 120 ms in turn (VFR), millisecond timestamps.
    "x264-vfr": lambda: encode(
        90,
        rate=12,
        options=x264("keyint=15:min-keyint=15:bframes=3"),
        pts=lambda i: (i // 3) * 240 + (0, 40, 120)[i % 3],
        time_base=Fraction(1, 1000),
    ),
    # Timestamps start at 2.5 s (a cut from a longer recording), in Matroska.
    "x264-mkv-offset-pts": lambda: encode(
        90,
        container="matroska",
        options=x264("keyint=15:min-keyint=15:bframes=2"),
        pts=lambda i: 2500 + i * 66,
        time_base=Fraction(1, 1000),
    ),
    "mpeg4-avi": lambda: encode(90, codec="mpeg4", container="avi", options={"g": "15"}),
    "mpeg4-bframes-avi": lambda: encode(
        90, codec="mpeg4", container="avi", options={"g": "15", "bf": "2"}
    ),
    # H.264 with B-frames in AVI: the demuxer's pts follow decode order, not display order.
    "x264-bframes-avi": lambda: encode(
        90, container="avi", options=x264("keyint=15:min-keyint=15:bframes=3")
    ),
}


def _box(data: bytes, kind: bytes) -> int:
    """Offset of the payload of the first ISO BMFF box ``kind`` (after size, type)."""
    at = data.find(kind)
    if at < 4:
        raise ValueError(f"no {kind!r} box")
    return at + 4


def pts_jump_back(data: bytes, from_sample: int = 45, shift: int = 40 * 1024 + 512) -> bytes:
    """MP4 whose composition offsets are shifted for the samples before ``from_sample``:
    timestamps jump backwards there (by ``shift`` ticks, not a whole frame: no duplicates).
    A negative shift moves samples before the edit list's start (discarded packets)."""
    out = bytearray(data)
    at = _box(data, b"ctts") + 4
    (entries,) = struct.unpack(">I", data[at : at + 4])
    sample = 0
    for entry in range(entries):
        pos = at + 4 + entry * 8
        count, offset = struct.unpack(">Ii", data[pos : pos + 8])
        if sample < from_sample:
            out[pos + 4 : pos + 8] = struct.pack(">i", offset + shift)
        sample += count
    return bytes(out)


def claims_more_frames(data: bytes, frames: int = 900) -> bytes:
    """AVI whose stream header claims ``frames`` frames (dwLength), far more than it holds."""
    out = bytearray(data)
    at = data.find(b"strh") + 8 + 32  # chunk id, size, then fccType … dwStart
    out[at : at + 4] = struct.pack("<I", frames)
    return bytes(out)


HOSTILE: dict[str, Callable[[], bytes]] = {
    # 60 s of frames after one keyframe: nowhere to seek to, every reference frame
    # up to the last sampled one must be decoded. (Container keyframe flags cannot
    # lie here: FFmpeg's parsers set them from the bitstream.)
    "no-keyframe-after-first": lambda: encode(900, options=x264("keyint=infinite:bframes=3")),
    "pts-jump-back": lambda: pts_jump_back(KINDS["x264-bframes-closed"]()),
    "discarded-packets": lambda: pts_jump_back(KINDS["x264-bframes-closed"](), shift=-41472),
    "claims-more-frames": lambda: claims_more_frames(KINDS["mpeg4-avi"]()),
}
