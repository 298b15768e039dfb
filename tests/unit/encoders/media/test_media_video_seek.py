"""Frame-selective video decoding (encoders/media/video_decode.py) is bit-identical to
decoding every frame in order, on every stream kind, and falls back where it must."""

from __future__ import annotations

import io
import math
import time
from collections.abc import Iterator
from functools import cache
from types import SimpleNamespace

import av
import pytest
import torch
import torch.nn.functional as F

import encoders.media.video as video
from encoders.media import MediaError, preprocess
from encoders.media.container import VIDEO_DEMUXERS
from encoders.media.image import normalize_clip
from encoders.media.sniff import sniff
from encoders.media.video import frame_plan, process_frame, spatial_crops
from encoders.media.video_decode import decode_selected, frame_ranks
from tests.unit.encoders.media.streams import HOSTILE, KINDS

# Kinds whose timestamps the fast path cannot trust: they go the sequential way.
SEQUENTIAL_KINDS = {"x264-bframes-avi", "x264-intra-refresh"}


@cache
def stream(name: str) -> bytes:
    return {**KINDS, **HOSTILE}[name]()


def sequential_reference(data: bytes) -> torch.Tensor:
    """Today's definition, written out independently: decode every frame in order, keep
    the planned indices (re-plan once if the stream is shorter than declared)."""
    fmt = VIDEO_DEMUXERS[sniff(data) or ""]
    with av.open(io.BytesIO(data), format=fmt) as container:
        s = container.streams.video[0]
        fps = float(s.average_rate or s.guessed_rate)
        count = s.frames or sum(1 for p in container.demux(s) if p.size)

    def decode(plan: list[tuple[int, int]]) -> tuple[dict[int, torch.Tensor], int]:
        wanted = {i for pair in plan for i in pair}
        frames, decoded = {}, 0
        with av.open(io.BytesIO(data), format=fmt) as container:
            for index, frame in enumerate(container.decode(container.streams.video[0])):
                decoded = index + 1
                if index in wanted:
                    frames[index] = process_frame(
                        torch.from_numpy(frame.to_ndarray(format="rgb24"))
                    )
                if index >= max(wanted):
                    break
        return frames, decoded

    plan = frame_plan(count, fps)
    frames, decoded = decode(plan)
    if len(frames) < len({i for pair in plan for i in pair}):
        plan = frame_plan(decoded, fps)
        frames, _ = decode(plan)
    entries = []
    for first, last in plan:
        entries.extend(spatial_crops(torch.stack([frames[first], frames[last]], dim=1)))
    return torch.stack(entries).unsqueeze(0)


@pytest.fixture
def paths(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Records which decoder ran: "selected", "fallback" (it gave up) or "sequential"."""
    taken: list[str] = []
    real_selected, real_sequential = video.decode_selected, video.decode_sequential

    def selected(*args: object, **kwargs: object) -> object:
        out = real_selected(*args, **kwargs)  # type: ignore[arg-type]
        taken.append("selected" if out is not None else "fallback")
        return out

    def sequential(*args: object, **kwargs: object) -> object:
        taken.append("sequential")
        return real_sequential(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(video, "decode_selected", selected)
    monkeypatch.setattr(video, "decode_sequential", sequential)
    yield taken


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_stream_kind_is_bit_identical_to_sequential_decoding(kind, paths):
    data = stream(kind)
    got = preprocess("video", data)
    assert torch.equal(got, sequential_reference(data)), kind
    if kind in SEQUENTIAL_KINDS:
        assert "sequential" in paths
    else:
        assert paths == ["selected"], f"{kind} fell back: {paths}"


def test_fixture_video_is_bit_identical_and_selective(media, paths):
    data = media("a.mp4")  # 1080p H.264 with B-pyramid, keyframes at 0 and 192
    assert torch.equal(preprocess("video", data), sequential_reference(data))
    assert paths == ["selected"]


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_streams_made_to_defeat_seeking(name, paths):
    """Either the sequential result or a MediaError, in bounded time."""
    data = stream(name)
    start = time.monotonic()
    try:
        got = preprocess("video", data)
    except MediaError as exc:
        assert exc.reason in {"corrupt", "too_short", "too_long"}
    else:
        assert torch.equal(got, sequential_reference(data)), name
    assert time.monotonic() - start < 5.0
    if name in ("pts-jump-back", "discarded-packets", "claims-more-frames"):
        assert "selected" not in paths  # the index itself is refused


def test_packets_without_pts_fall_back(monkeypatch, paths):
    data = stream("x264-bframes-closed")
    real_index = video.index_packets

    def index_without_pts(*args: object) -> list[av.Packet]:
        packets = real_index(*args)  # type: ignore[arg-type]
        for packet in packets[10:]:
            packet.pts = None
        return packets

    monkeypatch.setattr(video, "index_packets", index_without_pts)
    assert torch.equal(preprocess("video", data), sequential_reference(data))
    assert paths == ["sequential"]


def test_a_wanted_frame_that_never_appears_gives_up():
    data = stream("x264-bframes-closed")
    with av.open(io.BytesIO(data), format="mov") as container:
        s = container.streams.video[0]
        packets = video.index_packets(container, s, 10_000)
        ranks = frame_ranks(packets, reorders=True)
        assert ranks is not None
        wanted = {0, 29, 44}
        lost = next(i for i, p in enumerate(packets) if ranks[p.pts] == 29)
        found = decode_selected(
            s.codec_context, packets[:lost] + packets[lost + 1 :], ranks, wanted,
            lambda frame: None, lambda frame: frame.pts,
        )  # fmt: skip
        assert found is None
        found = decode_selected(
            s.codec_context, packets, ranks, wanted, lambda frame: None, lambda frame: frame.pts
        )
        assert found is not None and sorted(found) == [0, 29, 44]


# --- the index rules on fake packets ---


def _packets(pts: list[int | None], keys: set[int], **flags: bool) -> list[SimpleNamespace]:
    return [
        SimpleNamespace(
            pts=p, is_keyframe=i in keys, is_discard=flags.get("discard", False), is_corrupt=False
        )
        for i, p in enumerate(pts)
    ]


def test_ranks_are_pts_order_and_refuse_what_they_cannot_trust():
    closed = [0, 3, 1, 2, 4, 7, 5, 6]  # I P B B | I P B B in decode order
    assert frame_ranks(_packets(closed, {0, 4}), reorders=True) == {p: p for p in range(8)}
    assert frame_ranks(_packets(closed, {0, 4}), reorders=False) is None  # decoder disagrees
    assert frame_ranks(_packets(list(range(8)), {0, 4}), reorders=True) is None  # AVI-style
    assert frame_ranks(_packets([0, 3, 1, None], {0}), reorders=True) is None
    assert frame_ranks(_packets([0, 3, 1, 3], {0}), reorders=True) is None  # duplicate pts
    assert frame_ranks(_packets(closed, {1, 4}), reorders=True) is None  # starts mid-GOP
    assert frame_ranks(_packets(closed, {0, 4}, discard=True), reorders=True) is None
    # Open GOP: the leading B-frames of the second keyframe sit before it in pts.
    open_gop = [0, 3, 1, 2, 6, 4, 5, 9, 7, 8]
    assert frame_ranks(_packets(open_gop, {0, 4}), reorders=True) is not None
    # The second GOP plays before the first: keyframe segments overlap in pts.
    assert frame_ranks(_packets([10, 13, 11, 12, 0, 3, 1, 2], {0, 4}), reorders=True) is None


# --- conversion: bit-identical to the reference's per-frame resize, at any thread count ---


def _reference_resize(rgb: torch.Tensor) -> torch.Tensor:
    """The [1, 3, H, W] contiguous resize the reference path ran (at ≥ 2 threads)."""
    height, width = rgb.shape[:2]
    size = (224, math.floor(width / height * 224)) if width >= height else (
        math.floor(height / width * 224), 224)  # fmt: skip
    frame = rgb.permute(2, 0, 1).contiguous().to(torch.float32) / 255.0
    return normalize_clip(F.interpolate(frame[None], size=size, mode="bilinear")[0])


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_frame_resize_does_not_depend_on_the_thread_count(threads):
    generator = torch.Generator().manual_seed(0)
    frames = [
        torch.randint(0, 256, (h, w, 3), generator=generator, dtype=torch.uint8)
        for h, w in [(720, 1280), (64, 48), (481, 641), (300, 224)]
    ]
    before = torch.get_num_threads()
    torch.set_num_threads(max(2, before))
    expected = [_reference_resize(f) for f in frames]
    try:
        torch.set_num_threads(threads)
        resizer = video.FrameResizer()  # one buffer, reused across sizes
        for frame, want in zip(frames, expected, strict=True):
            assert torch.equal(resizer(frame), want)
    finally:
        torch.set_num_threads(before)
