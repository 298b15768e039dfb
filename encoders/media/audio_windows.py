"""Decoding only the audio ImageBind reads: three 2 s windows, whatever the file's length.

Why: the reference decodes the whole file, resamples it, then reads three 2 s
clips. A 125 KB FLAC of silence can declare 8 channels at 192 kHz for 299 s:
1.8 GB of float samples to read 6 s of them. Here memory is bounded by the
windows (``reservation_bytes``, a function of rate and channels only), and
for WAV and FLAC, whose frames decode independently, the decoder seeks to each
window instead of decoding what lies between them.

The windows depend on the stream's length, which only decoding proves (headers
can lie). So:

1. ``plan(length, rate)`` names the input sample ranges (``pieces``) that the
   clips need, with the resampler's margins.
2. With a declared length: WAV and FLAC seek to each piece and then read on to
   the end, which checks the declared length; other codecs decode as a stream
   and keep only the pieces of the declared length's plan.
3. Where the length decoded differs from the declared one (or none was
   declared), a second pass keeps the pieces of the real length's plan.

The output equals ``features(resample(decode(...)))`` bit for bit: the same
samples land in buffers laid out as the full waveform's clips were (packed
formats interleaved; a clip that is not the whole waveform never contiguous
across channels), so torch sums each clip's mean in the same order.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np
import torch

from . import fbank as kaldi
from .audio_samples import frame_samples, to_float
from .container import open_decoder
from .errors import MediaError
from .guard import DecodeGuard
from .media_limits import MediaLimits
from .resample import frame_spans, reduced_rates, resample_frames, sinc_kernel

SAMPLE_RATE = kaldi.SAMPLE_RATE
#: Decoders whose frames decode without their predecessors, so a seek gives the
#: samples a sequential decode gives.
SEEKABLE = frozenset({"wav", "flac"})
#: Decoded frames, demuxer buffers and FFmpeg's own state, on top of the windows.
DECODER_MARGIN_BYTES = 4 * 2**20
CLIP_SAMPLES = 2 * SAMPLE_RATE

#: 16 kHz length → [start, end) of each clip (``audio.clip_ranges``).
ClipRanges = Callable[[int], list[tuple[int, int]]]
#: Opens the item's container afresh (each pass reads from the start).
Opener = Callable[[], AbstractContextManager[av.container.InputContainer]]


@dataclass(frozen=True)
class Plan:
    """What the clips of a ``length``-sample stream at ``rate`` read."""

    length: int  # input samples
    rate: int
    out_length: int  # 16 kHz samples
    clips: list[tuple[int, int]]  # 16 kHz [start, end) per clip
    spans: list[tuple[int, int]]  # polyphase frame ranges to compute (resampling only)
    pieces: list[tuple[int, int]]  # input [start, end) ranges to keep, merged, sorted


def plan(length: int, rate: int, clip_ranges: ClipRanges) -> Plan:
    """The pieces of input a ``length``-sample stream's clips need."""
    if rate == SAMPLE_RATE:
        clips = clip_ranges(length)
        return Plan(length, rate, length, clips, [], _merge(clips))
    orig, new, width = reduced_rates(rate, SAMPLE_RATE)
    out_length = -(-new * length // orig)
    clips = clip_ranges(out_length)
    taps = 2 * width + orig
    frames = (length + 2 * width + orig - taps) // orig + 1
    spans = frame_spans(clips, new, frames)
    inputs = [
        (max(0, start * orig - width), min(length, (end - 1) * orig + taps - width))
        for start, end in spans
    ]
    return Plan(length, rate, out_length, clips, spans, _merge(inputs))


def reservation_bytes(rate: int, channels: int) -> int:
    """Bytes the windows of any stream at ``rate`` × ``channels`` can hold at once: the
    kept input (three 2 s windows and the resampler's margins), one span's zero-padded
    copy, its convolution output and the 16 kHz clips."""
    if rate == SAMPLE_RATE:
        kept = 3 * (CLIP_SAMPLES + 1)
        working = 0
    else:
        orig, new, width = reduced_rates(rate, SAMPLE_RATE)
        window = math.ceil(CLIP_SAMPLES * orig / new) + 2 * (2 * width + orig)
        kept = 3 * window
        working = window + 2 * (CLIP_SAMPLES + 2 * new)
    return 4 * channels * (kept + working) + DECODER_MARGIN_BYTES


@dataclass
class Decoded:
    """One pass over the stream: its real length and the 16 kHz clip segments it made."""

    length: int
    rate: int
    complete: bool  # every piece of the plan it decoded for was filled
    segments: list[tuple[int, torch.Tensor]]  # (16 kHz start, [C, n]) covering the clips


def decode_windows(
    reopen: Opener, limits: MediaLimits, guard: DecodeGuard, clip_ranges: ClipRanges
) -> tuple[Plan, Decoded]:
    """Decode what the clips need of the first audio stream (module docstring, steps 1–3)."""
    with reopen() as container:
        stream = _stream(container, limits)
        declared = _declared_length(container, stream)
        rate = stream.codec_context.sample_rate
        seekable = container.format.name in SEEKABLE and stream.time_base == Fraction(1, rate)
        guess = plan(declared, rate, clip_ranges) if declared and rate else None
        decoded = None
        if guess is not None and seekable:
            decoded = _seek_pass(container, stream, guess, limits, guard)
    if decoded is None:
        with reopen() as container:
            decoded = _stream_pass(container, _stream(container, limits), guess, limits, guard)
    if guess is not None and decoded.length == guess.length and decoded.complete:
        return guess, decoded
    real = plan(decoded.length, decoded.rate, clip_ranges)
    with reopen() as container:
        again = _stream_pass(container, _stream(container, limits), real, limits, guard)
    if again.length != real.length or not again.complete:
        raise MediaError("corrupt", "the audio stream decodes differently on a second read")
    return real, again


def _stream(
    container: av.container.InputContainer, limits: MediaLimits
) -> av.audio.stream.AudioStream:
    stream = container.streams.audio[0]
    open_decoder(stream, limits.audio_codecs, "audio")
    return stream


def _declared_length(
    container: av.container.InputContainer, stream: av.audio.stream.AudioStream
) -> int | None:
    rate = stream.codec_context.sample_rate
    if not rate:
        return None
    if stream.duration and stream.time_base:
        return round(stream.duration * stream.time_base * rate)
    if container.duration:
        return round(container.duration * rate / av.time_base)
    return None


class _Keeper:
    """Copies the samples of each decoded frame that fall in the wanted pieces; a piece
    is resampled as soon as it is filled and its input let go, so only one piece of
    input is held at a time."""

    def __init__(self, wanted: Plan | None, guard: DecodeGuard, limits: MediaLimits) -> None:
        self.wanted, self.guard, self.limits = wanted, guard, limits
        self.pending: list[tuple[int, int]] = []  # pieces not yet filled, in order
        self.pieces: dict[tuple[int, int], np.ndarray] = {}  # the ones being filled
        self.segments: list[tuple[int, torch.Tensor]] = []
        self.rate = self.channels = self.max_samples = 0
        self.packed = False
        self.position = 0  # samples decoded so far

    def first(self, frame: av.AudioFrame, channels: int) -> None:
        self.rate, self.channels = frame.sample_rate, channels
        self.packed = not frame.format.is_planar
        limits = self.limits
        if not limits.min_audio_sample_rate <= self.rate <= limits.max_audio_sample_rate:
            raise MediaError("unsupported_format", f"sample rate {self.rate} Hz is not supported")
        if channels > limits.max_audio_channels:
            raise MediaError("unsupported_format", f"{channels} channels, over the limit")
        self.max_samples = math.floor(limits.max_audio_seconds * self.rate)
        self.guard.reserve(
            reservation_bytes(self.rate, channels) - self.guard.reserved,
            limits.max_audio_decoded_bytes,
            "audio",
        )
        if self.wanted is not None and self.wanted.rate != self.rate:
            self.wanted = None  # the header's rate was wrong: count, then plan again
        self.pending = list(self.wanted.pieces) if self.wanted is not None else []

    def take(self, frame: av.AudioFrame, at: int) -> int:
        """Keep what ``frame`` (starting at input sample ``at``) holds of the pieces;
        returns the sample after it."""
        samples = frame_samples(frame)
        if not self.channels:
            self.first(frame, len(samples))
        elif frame.sample_rate != self.rate or len(samples) != self.channels:
            raise MediaError(
                "unsupported_format", "sample rate or channel count changes mid-stream"
            )
        count = len(samples[0])
        end = at + count
        if end > self.max_samples:
            raise MediaError(
                "too_long", f"audio decodes to over the {self.limits.max_audio_seconds:g} s limit"
            )
        for start, stop in list(self.pending):
            if start >= end:
                break
            lo, hi = max(start, at), min(stop, end)
            buffer = self.pieces.get((start, stop))
            if buffer is None:  # allocated when first reached: one piece held at a time
                whole = (start, stop) == (0, self.wanted.length)  # type: ignore[union-attr]
                buffer = _piece_buffer(self.channels, stop - start, self.packed, whole)
                self.pieces[(start, stop)] = buffer
            if lo < hi:
                for channel, values in enumerate(samples):
                    to_float(values[lo - at : hi - at], buffer[channel, lo - start : hi - start])
            if stop <= end:
                self.pending.remove((start, stop))
                del self.pieces[(start, stop)]
                self.segments += piece_segments(self.wanted, start, buffer)  # type: ignore[arg-type]
        return end

    def result(self, length: int) -> Decoded:
        if length == 0:
            raise MediaError("too_short", "the audio stream decodes to no samples")
        complete = self.wanted is not None and not self.pending
        return Decoded(length, self.rate, complete, self.segments)


def _stream_pass(
    container: av.container.InputContainer,
    stream: av.audio.stream.AudioStream,
    wanted: Plan | None,
    limits: MediaLimits,
    guard: DecodeGuard,
) -> Decoded:
    """Decode every packet in order, keeping ``wanted``'s pieces (none: only count)."""
    keeper = _Keeper(wanted, guard, limits)
    position = 0
    for packet in container.demux(stream):
        guard.check()
        for frame in packet.decode():
            position = keeper.take(frame, position)
    return keeper.result(position)


def _seek_pass(
    container: av.container.InputContainer,
    stream: av.audio.stream.AudioStream,
    wanted: Plan,
    limits: MediaLimits,
    guard: DecodeGuard,
) -> Decoded | None:
    """Seek to each piece, then read on to the end: None where the timestamps do not
    name every needed sample exactly once (the caller decodes as a stream instead)."""
    keeper = _Keeper(wanted, guard, limits)
    position: int | None = None  # the sample after the last frame taken
    try:
        for start, end in wanted.pieces:
            if position is None or start > position:
                container.seek(start, stream=stream, backward=True)
                position = _read(container, stream, keeper, guard, None, start, end)
            else:
                position = _read(container, stream, keeper, guard, position, start, end)
            if position is None:
                return None
        position = _read(container, stream, keeper, guard, position, position, None)
    except av.error.FFmpegError:
        return None
    return keeper.result(position) if position is not None else None


def _read(
    container: av.container.InputContainer,
    stream: av.audio.stream.AudioStream,
    keeper: _Keeper,
    guard: DecodeGuard,
    position: int | None,
    start: int,
    until: int | None,
) -> int | None:
    """Decode on from the demuxer's position until sample ``until`` (None: the end).
    Frames must follow each other without gaps, the first one at ``position`` or, after
    a seek (``position`` None), at or before ``start``. Returns the sample after the
    last frame, or None where the timestamps break that."""
    for packet in container.demux(stream):
        guard.check()
        for frame in packet.decode():
            pts = frame.pts
            if pts is None or (pts != position if position is not None else pts > start):
                return None
            position = keeper.take(frame, pts)
        if until is not None and position is not None and position >= until:
            return position
    return position if until is None else None


def _piece_buffer(channels: int, count: int, packed: bool, whole: bool) -> np.ndarray:
    """float32 ``[C, count]`` laid out as the full waveform's clips were (module
    docstring): interleaved for packed formats; for planar ones, rows one sample
    apart unless the piece is the whole stream."""
    if packed:
        return np.empty((count, channels), dtype=np.float32).T
    if whole:
        return np.empty((channels, count), dtype=np.float32)
    return np.empty((channels, count + 1), dtype=np.float32)[:, :count]


def piece_segments(
    found: Plan, piece_start: int, piece: np.ndarray
) -> list[tuple[int, torch.Tensor]]:
    """The 16 kHz segments ``(start, [C, n])`` computed from one filled piece of input."""
    if found.rate == SAMPLE_RATE:
        return [(piece_start, torch.from_numpy(piece))]
    channels, count = piece.shape
    orig, new, width = reduced_rates(found.rate, SAMPLE_RATE)
    kernel = sinc_kernel(orig, new, width)  # [new, 1, K]
    taps = kernel.shape[-1]
    frames = (found.length + 2 * width + orig - taps) // orig + 1
    segments = []
    for start, end in found.spans:
        first, last = start * orig - width, (end - 1) * orig + taps - width
        if not (piece_start <= max(0, first) and min(found.length, last) <= piece_start + count):
            continue  # this span reads another piece
        phased = resample_frames(
            torch.from_numpy(piece), piece_start, found.length, orig, width, kernel, start, end
        )  # [C, end − start, new]
        if (start, end) == (0, frames):  # the whole stream: the full resample's buffer
            out = phased.reshape(channels, -1)
        else:
            size = (end - start) * new
            out = torch.empty(channels, size + 1)[:, :size]
            out.copy_(phased.reshape(channels, -1))
        segments.append((start * new, out[:, : max(0, found.out_length - start * new)]))
    return segments


def _merge(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(r for r in ranges if r[1] > r[0]):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged
