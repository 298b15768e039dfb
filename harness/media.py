"""Writing media with PyAV: video from RGB frames, audio from samples, any codec and
container, into bytes in memory (tests and benchmarks download nothing); and an
audio track copied into another container.

Both writers take a sequence or a generator, so a long clip need not be held at
once: frames are encoded as they come, then the encoder is flushed.
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Callable, Iterable, Mapping
from fractions import Fraction

import av
import numpy as np

LAYOUTS = {1: "mono", 2: "stereo", 6: "5.1", 8: "7.1"}  # channels -> PyAV layout name


def write_video(
    frames: Iterable[np.ndarray],
    *,
    rate: int,
    codec: str = "libx264",
    container: str = "mp4",
    pix_fmt: str = "yuv420p",
    options: Mapping[str, str] | None = None,
    pts: Callable[[int], int] | None = None,
    time_base: Fraction | None = None,
    qscale: int | None = None,
    size: tuple[int, int] | None = None,
) -> bytes:
    """uint8 RGB frames [H, W, 3] → encoded bytes; `size` (W, H) defaults to the first
    frame's (give it for a video of no frames).

    `pts(i)` is frame i's timestamp in `time_base` units (default: i, in 1/rate)."""
    stream_of = iter(frames)
    first = next(stream_of, None)
    if size is None:
        if first is None:
            raise ValueError("no frames: give the size")
        size = (first.shape[1], first.shape[0])
    buffer = io.BytesIO()
    with av.open(buffer, "w", format=container) as out:
        stream = out.add_stream(codec, rate=rate, options=dict(options or {}))
        (stream.width, stream.height), stream.pix_fmt = size, pix_fmt
        if qscale is not None:
            stream.codec_context.qscale = qscale
        if time_base is not None:
            stream.codec_context.time_base = time_base
        everything = stream_of if first is None else itertools.chain([first], stream_of)
        for index, rgb in enumerate(everything):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = pts(index) if pts else index
            if time_base is not None:
                frame.time_base = time_base
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buffer.getvalue()


def write_audio(
    samples: np.ndarray | Iterable[np.ndarray],
    *,
    rate: int,
    codec: str = "pcm_s16le",
    container: str = "wav",
    chunk: int = 4096,
) -> bytes:
    """Samples [C, n] → encoded bytes: one array (cut into frames here) or chunks of one.

    Float samples are in [−1, 1] and scaled to the codec's sample format; integer
    samples are taken as already at its width (cheap silence for long clips)."""
    chunks = _chunks(samples, chunk) if isinstance(samples, np.ndarray) else iter(samples)
    first = next(chunks)
    layout = LAYOUTS[first.shape[0]]
    buffer = io.BytesIO()
    with av.open(buffer, "w", format=container) as out:
        stream = out.add_stream(codec, rate=rate, layout=layout)
        fmt = stream.codec_context.format
        start = 0
        for part in itertools.chain([first], chunks):
            data = _as_format(part, fmt.name)
            if not fmt.is_planar:
                data = data.T.reshape(1, -1)  # [C, n] → packed [1, n·C]
            frame = av.AudioFrame.from_ndarray(data, format=fmt.name, layout=layout)
            frame.sample_rate, frame.pts, frame.time_base = rate, start, Fraction(1, rate)
            start += part.shape[1]
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buffer.getvalue()


def remux_audio(data: bytes, container: str) -> bytes:
    """The audio track of `data`, packets copied as they are into a new `container`."""
    out = io.BytesIO()
    with av.open(io.BytesIO(data), "r") as src, av.open(out, "w", format=container) as dst:
        in_stream = src.streams.audio[0]
        stream = dst.add_stream_from_template(in_stream)
        for packet in src.demux(in_stream):
            if packet.dts is None:  # the demuxer's empty flush packet
                continue
            packet.stream = stream
            dst.mux(packet)
    return out.getvalue()


def _chunks(samples: np.ndarray, size: int) -> Iterable[np.ndarray]:
    for start in range(0, samples.shape[1], size):
        yield samples[:, start : start + size]


def _as_format(part: np.ndarray, fmt: str) -> np.ndarray:
    """[C, n] samples in the dtype of PyAV sample format `fmt` (s16, s32, flt, ...)."""
    if fmt.startswith("s16"):
        dtype, scale = np.int16, 32767
    elif fmt.startswith("s32"):
        dtype, scale = np.int32, 2**31 - 1
    else:
        return np.ascontiguousarray(part, dtype=np.float32)
    if np.issubdtype(part.dtype, np.integer):
        return np.ascontiguousarray(part, dtype=dtype)
    info = np.iinfo(dtype)
    return np.clip(np.round(part * scale), info.min, info.max).astype(dtype)
