"""Media made to cost far more to decode than to send, built when needed.

Used by the decode-bomb mode of the benchmark's flood and by the tests. Nothing here
is committed as a file: each builder makes its bytes with PyAV in seconds.
The classes are the ones the decode guard bounds
(encoders/media/guard.py): audio that declares hours of many-channel samples,
video whose last sampled frame needs thousands of frames decoded, and a codec
outside the allow-list inside an accepted container. ``salt`` makes distinct
bytes (so a content cache cannot answer a second copy) without changing what
decoding costs.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from fractions import Fraction

import av
import numpy as np

from harness.media import write_audio, write_video


def silent_audio(
    seconds: float = 299.0,
    rate: int = 192_000,
    channels: int = 8,
    container: str = "flac",
    codec: str = "flac",
    salt: int = 0,
) -> bytes:
    """Silence, ``channels`` × ``rate`` for ``seconds``: compresses to almost nothing."""
    return write_audio(
        _silence(int(seconds * rate), channels, salt), rate=rate, codec=codec, container=container
    )


def _silence(total: int, channels: int, salt: int, chunk: int = 4608) -> Iterator[np.ndarray]:
    """Integer zeros [C, chunk] up to ``total`` samples; ``salt`` as the first one."""
    plane = np.zeros((channels, chunk), dtype=np.int32)
    for start in range(0, total, chunk):
        part = plane if start + chunk <= total else plane[:, : total - start]
        if start == 0 and salt:
            part = part.copy()
            part[0, 0] = salt  # one sample of the first frame: distinct bytes
        yield part


def salted_flac(data: bytes, salt: int) -> bytes:
    """``data`` (a FLAC file) with ``salt`` in its STREAMINFO MD5 field: other bytes, the
    same samples (FFmpeg does not check the signature). Cheaper than encoding again."""
    if data[:4] != b"fLaC":
        raise ValueError("not a FLAC file")
    at = 4 + 4 + 18  # "fLaC", the block header, STREAMINFO up to its MD5
    return data[:at] + salt.to_bytes(16, "big") + data[at + 16 :]


def long_gop_video(
    frames: int = 17_400,
    width: int = 1920,
    height: int = 1080,
    rate: int = 60,
    salt: int = 0,
) -> bytes:
    """One keyframe, then ``frames`` − 1 copies of one all-skip P-frame (H.264 in MP4):
    585 KB at the defaults, made in under a second, and every frame up to the last
    sampled one must be decoded (23 s of one core at 1080p). Encoding each frame
    would take minutes; the copies decode as an unchanging picture."""
    y, x = np.mgrid[0:height, 0:width]
    picture = np.stack([(x + salt) % 256, y % 256, (x + y) % 256], -1).astype(np.uint8)
    frame = av.VideoFrame.from_ndarray(picture, format="rgb24").reformat(format="yuv420p")
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as out:
        stream = out.add_stream(
            "libx264",
            rate=rate,
            options={"preset": "ultrafast", "x264-params": "keyint=infinite:scenecut=0:bframes=0"},
        )
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        packets = []
        for index in range(2):
            frame.pts = index
            packets += stream.encode(frame)
        packets += stream.encode(None)
        keyframe, skip = packets[0], bytes(packets[1])
        out.mux(keyframe)
        for index in range(1, frames):
            packet = av.Packet(skip)
            packet.stream = stream
            packet.pts = packet.dts = index
            packet.time_base = Fraction(1, rate)
            out.mux(packet)
    return buffer.getvalue()


def jpeg2000_video(frames: int = 10, salt: int = 0) -> bytes:
    """A JPEG 2000 video in Matroska: an accepted container around a decoder that is not."""
    rng = np.random.default_rng(salt)
    pictures = (rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for _ in range(frames))
    return write_video(pictures, rate=10, codec="jpeg2000", container="matroska", pix_fmt="rgb24")
