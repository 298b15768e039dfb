"""Decoding only the video frames the sampler uses.

Why: ImageBind keeps 10 frames of a video, but decoding every frame up to the
last of them was most of a video item's cost. Here the container is demuxed
once without decoding (``index_packets``), and a frame's identity is the rank
of its pts among the stream's packets, so frame *i* is known before anything
is decoded. ``decode_selected`` then starts at the keyframe before each
group of wanted frames (jumping in the packet list and flushing the decoder
between distant groups: the packets are already in memory, so no container
seek is needed), and sets ``skip_frame`` to skip the non-reference frames no
wanted frame can depend on.

The result must equal decoding every frame in order (``decode_sequential``,
today's definition), so the fast path refuses whatever it cannot trust and
the caller falls back to sequential decoding:

- a packet without pts, duplicate pts, discarded or corrupt packets, a first
  packet that is not a keyframe, or a header frame count that differs from
  the packets;
- timestamps that contradict the decoder: between keyframes the pts ranges
  must be disjoint and increasing (true of closed and open GOPs), and pts must
  be out of decode order exactly when the decoder reorders frames (AVI H.264
  carries decode-order pts);
- during decoding: a frame without pts or with an unknown pts, a seek target
  that does not decode as a keyframe, pts that go backwards within a run, a
  wanted frame that does not appear, or any FFmpeg error.

Each packet is fed at most once by the fast path and once (twice with the
re-plan) by the fallback, so a stream built to defeat seeking costs at most
about twice what sequential decoding costs, with the same memory bounds.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Callable
from typing import Generic, TypeVar

import av

from .errors import MediaError

#: What the caller keeps of a wanted frame (``convert``'s result).
T = TypeVar("T")
#: Called with every decoded frame, before it is used (frame-size limits).
FrameCheck = Callable[[av.VideoFrame], None]
#: Called before each packet is fed: may stop decoding (cancelled, over its CPU time).
Tick = Callable[[], None]


def index_packets(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    cap: int,
    too_far: Callable[[int, int], bool] = lambda position, since_keyframe: False,
) -> list[av.Packet]:
    """Every non-empty packet of ``stream`` in decode order (demux only); more than
    ``cap`` packets is ``too_long``. Packets hold at most the input's bytes.

    ``too_far(position, packets since the last keyframe)`` may stop indexing early
    (it raises): a refusal need not read the rest of a long file."""
    packets = []
    since_keyframe = 0
    for packet in container.demux(stream):
        if packet.size:
            since_keyframe = 0 if packet.is_keyframe else since_keyframe + 1
            too_far(len(packets), since_keyframe)
            packets.append(packet)
            if len(packets) > cap:
                raise MediaError("too_long", f"the video has over {cap} frames")
    return packets


def frame_ranks(packets: list[av.Packet], reorders: bool) -> dict[int, int] | None:
    """pts → frame index (its rank among the packets' pts), or None where the
    timestamps cannot be trusted to name frames (see the module docstring).

    ``reorders``: the decoder outputs frames in another order than it decodes them.
    """
    pts = [packet.pts for packet in packets]
    if not packets or not packets[0].is_keyframe or None in pts or len(set(pts)) != len(pts):
        return None
    if any(packet.is_discard or packet.is_corrupt for packet in packets):
        return None
    if reorders == all(a < b for a, b in itertools.pairwise(pts)):
        return None
    # Keyframe segments in decode order must cover disjoint, increasing pts ranges.
    suffix_min = pts[:]
    for i in range(len(pts) - 2, -1, -1):
        suffix_min[i] = min(suffix_min[i], suffix_min[i + 1])
    highest = pts[0]
    for i, packet in enumerate(packets):
        if i and packet.is_keyframe and suffix_min[i] <= highest:
            return None
        highest = max(highest, pts[i])
    return {value: rank for rank, value in enumerate(sorted(pts))}


def _start_of(position: int, packets: list[av.Packet], keyframes: list[int]) -> int:
    """The last keyframe at or before ``position`` whose pts is not after its own: the
    leading frames of an open GOP need the keyframe before theirs."""
    pts = packets[position].pts
    at = bisect.bisect_right(keyframes, position) - 1
    while at > 0 and packets[keyframes[at]].pts > pts:
        at -= 1
    return keyframes[at]


def plan_runs(
    packets: list[av.Packet], ranks: dict[int, int], wanted: set[int]
) -> list[tuple[int, int]] | None:
    """(start, target) packet positions of each run ``decode_selected`` makes, or None
    when a wanted frame has no packet (the caller falls back)."""
    by_pts = {pts for pts, index in ranks.items() if index in wanted}
    if len(by_pts) != len(wanted):
        return None
    keyframes = [i for i, packet in enumerate(packets) if packet.is_keyframe]
    targets = sorted(i for i, packet in enumerate(packets) if packet.pts in by_pts)
    # A run must start early enough for every later target too: an open GOP's leading
    # frame comes after its keyframe in decode order but needs the keyframe before.
    starts = [_start_of(target, packets, keyframes) for target in targets]
    for i in range(len(starts) - 2, -1, -1):
        starts[i] = min(starts[i], starts[i + 1])
    return list(zip(starts, targets, strict=True))


def packets_to_decode(
    packets: list[av.Packet], ranks: dict[int, int] | None, wanted: set[int]
) -> int:
    """Packets decoding will feed to reach every ``wanted`` frame: the selective runs
    where ``ranks`` allows them, else every packet up to the last wanted frame's."""
    runs = plan_runs(packets, ranks, wanted) if ranks is not None else None
    if runs is None:
        return min(len(packets), max(wanted) + 1)
    fed, position = 0, -1
    for start, target in runs:
        position = max(position, start - 1)
        fed += max(0, target - position)
        position = max(position, target)
    return fed


def decode_selected(
    codec: av.codec.context.CodecContext,
    packets: list[av.Packet],
    ranks: dict[int, int],
    wanted: set[int],
    check: FrameCheck,
    convert: Callable[[av.VideoFrame], T],
    tick: Tick = lambda: None,
) -> dict[int, T] | None:
    """{index: convert(frame)} for the ``wanted`` frame indices, or None: fall back."""
    runs = plan_runs(packets, ranks, wanted)
    if runs is None:
        return None
    by_pts = {pts: index for pts, index in ranks.items() if index in wanted}
    found: dict[int, T] = {}
    try:
        position = -1  # next packet to feed; -1: the decoder holds nothing yet
        run = _Run(by_pts, found, check, convert)
        for start, target in runs:
            if start > position:  # distant: drain this run, jump to the keyframe
                if position >= 0 and not run.drain(codec):
                    return None
                codec.flush_buffers()
                run = _Run(by_pts, found, check, convert, keyframe_pts=packets[start].pts)
                position = start
            for packet in packets[position : target + 1]:
                tick()
                codec.skip_frame = "DEFAULT" if packet.pts in by_pts else "NONREF"
                if not run.take(codec.decode(packet)):
                    return None
            position = target + 1
        if not run.drain(codec):
            return None
    except av.error.FFmpegError:
        return None
    finally:
        codec.skip_frame = "DEFAULT"
        codec.flush_buffers()
    return found if len(found) == len(wanted) else None


class _Run(Generic[T]):
    """The frames of one run (keyframe → last target): checks and keeps wanted ones."""

    def __init__(
        self,
        by_pts: dict[int, int],
        found: dict[int, T],
        check: FrameCheck,
        convert: Callable[[av.VideoFrame], T],
        keyframe_pts: int | None = None,
    ) -> None:
        self.by_pts, self.found, self.check, self.convert = by_pts, found, check, convert
        self.keyframe_pts = keyframe_pts
        self.last_pts: int | None = None

    def take(self, frames: list[av.VideoFrame]) -> bool:
        """False when a frame contradicts the index (the caller falls back)."""
        for frame in frames:
            self.check(frame)
            pts = frame.pts
            if pts is None or (self.last_pts is not None and pts <= self.last_pts):
                return False
            if pts == self.keyframe_pts and not frame.key_frame:
                return False  # the container called it a keyframe; the decoder did not
            self.last_pts = pts
            index = self.by_pts.get(pts)
            if index is not None and index not in self.found:
                if self.keyframe_pts is not None and pts < self.keyframe_pts:
                    return False  # a leading frame decoded without its references
                self.found[index] = self.convert(frame)
        return True

    def drain(self, codec: av.codec.context.CodecContext) -> bool:
        return self.take(codec.decode(None))


def decode_sequential(
    codec: av.codec.context.CodecContext,
    packets: list[av.Packet],
    wanted: set[int],
    check: FrameCheck,
    convert: Callable[[av.VideoFrame], T],
    tick: Tick = lambda: None,
) -> tuple[dict[int, T], int]:
    """Every frame in order, up to the last wanted output index (the definition the fast
    path must match) → ({index: convert(frame)}, frames decoded)."""
    last = max(wanted)
    found: dict[int, T] = {}
    decoded = 0
    codec.flush_buffers()
    for packet in [*packets, None]:  # None drains the decoder's delayed frames
        tick()
        for frame in codec.decode(packet):
            index = decoded
            decoded += 1
            check(frame)  # headers can lie: every frame, before converting any
            if index in wanted:
                found[index] = convert(frame)
            if index >= last:
                return found, decoded
    return found, decoded
