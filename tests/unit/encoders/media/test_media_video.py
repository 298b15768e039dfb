"""Video: containers, orientation, short clips, frame planning and crops."""

from __future__ import annotations

import pytest
import torch

from encoders.media import MediaLimits, preprocess
from encoders.media.video import frame_plan, process_frame, spatial_crops


@pytest.mark.parametrize(
    ("container", "codec"),
    [
        ("mp4", "mpeg4"),
        ("matroska", "mpeg4"),
        ("webm", "libvpx"),
        ("avi", "mpeg4"),
        ("mov", "h264"),
    ],
)
def test_containers_decode(make, container, codec):
    data = make.video(make.frames(45, 48, 64), 15, container, codec)
    out = preprocess("video", data)
    assert out.shape == (1, 15, 3, 2, 224, 224) and out.dtype == torch.float32
    assert torch.isfinite(out).all()


def test_sampled_frames_are_the_planned_ones(make):
    """Lossless-ish check: frame content encodes its index in the blue channel."""
    frames = make.frames(60, 64, 48)  # portrait, 4 s at 15 fps
    data = make.video(frames, 15)
    out = preprocess("video", data)
    plan = frame_plan(60, 15.0)
    assert plan == [(0, 29), (8, 37), (15, 44), (23, 52), (30, 59)]
    top = (298 - 224 + 1) // 2  # 48×64 scales to 224×298; centre crop offset

    def error(got: torch.Tensor, first: int, last: int) -> float:
        pair = [process_frame(torch.from_numpy(frames[i])) for i in (first, last)]
        expected = torch.stack(pair, dim=1)[..., top : top + 224, :]  # [3, 2, 224, 224]
        return (got - expected).abs().mean().item()

    for clip, (first, last) in enumerate(plan):
        got = out[0, clip * 3 + 1]  # centre crop
        # Lossy coding leaves ~0.06; a frame off by 2 is several times worse.
        assert error(got, first, last) < 0.1
        assert error(got, first, last) < 0.5 * error(got, first + 2, last - 2)


def test_portrait_crops_run_along_the_height():
    clip = torch.arange(3 * 2 * 300 * 224, dtype=torch.float32).view(3, 2, 300, 224)
    top, centre, bottom = spatial_crops(clip)
    assert torch.equal(top, clip[..., 0:224, :])
    assert torch.equal(centre, clip[..., 38:262, :])  # ceil((300 − 224) / 2) = 38
    assert torch.equal(bottom, clip[..., 76:300, :])


def test_landscape_scaling_rounds_down():
    frame = torch.zeros(1080, 1920, 3, dtype=torch.uint8)
    assert process_frame(frame).shape == (3, 224, 398)
    assert process_frame(torch.zeros(1920, 1080, 3, dtype=torch.uint8)).shape == (3, 398, 224)


def test_short_video_clips_all_start_at_zero(make):
    assert frame_plan(10, 10.0) == [(0, 9)] * 5
    assert frame_plan(1, 30.0) == [(0, 0)] * 5
    out = preprocess("video", make.video(make.frames(10, 48, 64), 10))
    assert torch.equal(out[0, 0], out[0, 12])  # clip 0 and clip 4, crop 0


def test_low_fps_empty_ranges_fall_back_to_the_nearest_frame():
    plan = frame_plan(3, 0.1)  # 30 s, one frame every 10 s
    assert all(0 <= first <= last < 3 for first, last in plan)


def test_matroska_frame_count_comes_from_packets(make):
    """Matroska stores no frame count: the demux-only count must match mp4's."""
    frames = make.frames(40, 48, 64)
    mkv = preprocess("video", make.video(frames, 20, "matroska"))
    mp4 = preprocess("video", make.video(frames, 20, "mp4"))
    assert torch.allclose(mkv, mp4, atol=1e-6)
    assert preprocess("video", make.video(frames, 20, "matroska"), MediaLimits()).shape[1] == 15


def test_header_overstating_the_frame_count_is_replanned(make):
    """A stream with fewer frames than declared is planned again over the real count."""
    from tests.unit.encoders.media.streams import claims_more_frames

    data = make.video(make.frames(30, 48, 64), 15, "avi")
    honest = preprocess("video", data)
    # 75 declared frames (5 s) but 30 decoded: the second plan uses 30, as if honest.
    assert torch.equal(preprocess("video", claims_more_frames(data, 75)), honest)
