"""Video → vision input ``[1, 15, 3, 2, 224, 224]``.

Reference step: PandaGPT ``data.load_and_transform_video_data`` (decord through
pytorchvideo ``EncodedVideo``):

1. duration = frame count / average fps.
2. 5 clips of 2 s, clip k from k·max(duration − 2, 0)/4 (``clips.py``).
3. Clip frames [ceil(fps·start), min(ceil(fps·end), N)); 2 frames kept, the
   first and the last (uniform temporal subsampling to 2).
4. /255, bilinear resize (align_corners False, no antialias) so the short side
   is 224 and the long side floor(long/short·224), CLIP mean/std.
5. 3 crops of 224 at offsets 0, ceil((L − 224)/2), L − 224 along the long side;
   output index = clip·3 + crop.

Decoding uses PyAV ``rgb24`` (identical to decord's RGB on the fixtures). Frames
are decoded in order, only the ≤ 10 sampled ones are converted and resized (one
at a time, so resizing per frame equals the reference's per-clip resize), and
decoding stops after the last one. Departures: a clip whose frame range is empty
(fps far below 1) uses its nearest frame instead of failing; if a stream has
fewer frames than its header declares, the plan is redone once with the real
count.
"""

from __future__ import annotations

import math

import av
import torch
import torch.nn.functional as F

from .clips import clip_timepoints
from .container import VIDEO_DEMUXERS, open_container
from .errors import MediaError
from .image import normalize_clip
from .limits import MediaLimits

SIZE = 224
CLIPS = 5
CLIP_SECONDS = 2
CROPS = 3


def preprocess_video(data: bytes, limits: MediaLimits) -> torch.Tensor:
    """Encoded video bytes → float32 ``[1, 15, 3, 2, 224, 224]``."""
    count, fps = _probe(data, limits)
    plan = frame_plan(count, fps)
    frames, decoded = _decode_frames(data, _indices(plan), limits)
    if len(frames) < len(_indices(plan)):
        # Fewer frames than declared: plan again over what the stream really holds.
        if decoded == 0:
            raise MediaError("too_short", "the video stream decodes to no frames")
        plan = frame_plan(decoded, fps)
        frames, _ = _decode_frames(data, _indices(plan), limits)
    entries = []
    for first, last in plan:
        clip = torch.stack([frames[first], frames[last]], dim=1)  # [3, 2, H', W']
        entries.extend(spatial_crops(clip))
    return torch.stack(entries).unsqueeze(0)  # [1, 15, 3, 2, 224, 224]


def frame_plan(count: int, fps: float) -> list[tuple[int, int]]:
    """(first, last) decoded-frame index of each of the 5 clips (steps 1–3)."""
    plan = []
    for start, end in clip_timepoints(count / fps, CLIP_SECONDS, CLIPS):
        # float × Fraction is float arithmetic in the reference, kept here.
        first = math.ceil(fps * float(start))
        stop = min(math.ceil(fps * float(end)), count)
        if stop <= first:  # empty range (fps ≪ 1): nearest frame instead (departure)
            first = min(first, count - 1)
            stop = first + 1
        plan.append((first, stop - 1))
    return plan


def _indices(plan: list[tuple[int, int]]) -> set[int]:
    return {index for pair in plan for index in pair}


def process_frame(rgb: torch.Tensor) -> torch.Tensor:
    """uint8 ``[H, W, 3]`` → normalised float32 ``[3, H', W']``, short side 224 (step 4)."""
    height, width = rgb.shape[:2]
    if width < height:
        size = (math.floor(height / width * SIZE), SIZE)
    else:
        size = (SIZE, math.floor(width / height * SIZE))
    frame = rgb.permute(2, 0, 1).contiguous().to(torch.float32) / 255.0  # [3, H, W]
    scaled = F.interpolate(frame[None], size=size, mode="bilinear", align_corners=False)
    return normalize_clip(scaled[0])


def spatial_crops(clip: torch.Tensor) -> list[torch.Tensor]:
    """``[3, T, H, W]`` → 3 crops ``[3, T, 224, 224]``: start, centre, end of the long side."""
    height, width = clip.shape[-2:]
    crops = []
    for index in range(CROPS):
        top = math.ceil((height - SIZE) / 2)
        left = math.ceil((width - SIZE) / 2)
        if height > width:
            top = (0, top, height - SIZE)[index]
        else:
            left = (0, left, width - SIZE)[index]
        crops.append(clip[..., top : top + SIZE, left : left + SIZE])
    return crops


def _probe(data: bytes, limits: MediaLimits) -> tuple[int, float]:
    """Frame count and average fps, refusing over-limit geometry/duration from headers."""
    with open_container(data, VIDEO_DEMUXERS, "video") as container:
        if not container.streams.video:
            raise MediaError("no_video_stream", "the file holds no video stream")
        stream = container.streams.video[0]
        _check_frame_size(stream.codec_context.width, stream.codec_context.height, limits)
        rate = stream.average_rate or stream.guessed_rate
        if not rate or rate <= 0:
            raise MediaError("corrupt", "the video stream declares no frame rate")
        fps = float(rate)
        if container.duration and container.duration / av.time_base > limits.max_video_seconds:
            raise MediaError("too_long", _too_long(container.duration / av.time_base, limits))
        count = stream.frames or _count_packets(container, stream, fps, limits)
    if count <= 0:
        raise MediaError("too_short", "the video stream has no frames")
    if count > limits.max_video_frames or count / fps > limits.max_video_seconds:
        raise MediaError("too_long", _too_long(count / fps, limits))
    return count, fps


def _count_packets(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    fps: float,
    limits: MediaLimits,
) -> int:
    """Frame count of a container that does not store it (Matroska, WebM): demux only."""
    cap = min(limits.max_video_frames, math.floor(limits.max_video_seconds * fps))
    count = 0
    for packet in container.demux(stream):
        if packet.size:
            count += 1
            if count > cap:
                raise MediaError("too_long", _too_long(count / fps, limits))
    return count


def _decode_frames(
    data: bytes, wanted: set[int], limits: MediaLimits
) -> tuple[dict[int, torch.Tensor], int]:
    """Decode in order up to the last wanted index → ({index: frame}, frames decoded)."""
    last = max(wanted)
    frames: dict[int, torch.Tensor] = {}
    decoded = 0
    with open_container(data, VIDEO_DEMUXERS, "video") as container:
        stream = container.streams.video[0]
        for index, frame in enumerate(container.decode(stream)):
            decoded = index + 1
            # Headers can lie: check every decoded frame, before converting any.
            _check_frame_size(frame.width, frame.height, limits)
            if index in wanted:
                rgb = torch.from_numpy(frame.to_ndarray(format="rgb24"))  # [H, W, 3]
                frames[index] = process_frame(rgb)
            if index >= last:
                break
    return frames, decoded


def _check_frame_size(width: int, height: int, limits: MediaLimits) -> None:
    if width <= 0 or height <= 0:
        raise MediaError("corrupt", f"video frame size {width}×{height} is not valid")
    if width * height > limits.max_video_pixels:
        raise MediaError(
            "too_large",
            f"video frames are {width}×{height}, over the {limits.max_video_pixels}-pixel limit",
        )
    if max(width, height) / min(width, height) > limits.max_aspect_ratio:
        raise MediaError("bad_dimensions", f"video frames are {width}×{height}, too elongated")


def _too_long(seconds: float, limits: MediaLimits) -> str:
    return f"video lasts {seconds:.1f} s, over the {limits.max_video_seconds:g} s limit"
