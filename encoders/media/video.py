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

Decoding uses PyAV ``rgb24`` (identical to decord's RGB on the fixtures). The
container is opened once: headers are checked, packets are indexed without
decoding, and only the ≤ 10 sampled frames are decoded where the stream allows
it (``video_decode.py``; the output is bit-identical to decoding every frame in
order, which remains the fallback). Sampled frames are converted one at a time
(resizing per frame equals the reference's per-clip resize) through one reused
float buffer. Departures: a clip whose frame range is empty (fps far below 1)
uses its nearest frame instead of failing; if a stream has fewer frames than
its header declares, the plan is redone once with the real count.

Bounds, all before the first frame is decoded: the decoder must be on the
allow-list; what decoding holds at once (``decoded_bytes``) is reserved from
the guard; and the frames decoding must feed to reach the sampled ones
(``packets_to_decode``, from the keyframe layout the index shows) times the
frame's pixels must stay under ``max_video_decode_pixels``, else
``too_complex``: one keyframe followed by 17,000 P-frames costs a 1080p video
23 s of a core to reach its last clip. The guard's CPU ceiling and
cancellation are checked before every packet.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import av
import torch
import torch.nn.functional as F

from .clips import clip_timepoints
from .container import VIDEO_DEMUXERS, open_container, open_decoder
from .errors import MediaError
from .guard import DecodeGuard
from .image import normalize_clip
from .media_limits import MediaLimits
from .video_decode import (
    decode_selected,
    decode_sequential,
    frame_ranks,
    index_packets,
    packets_to_decode,
)

SIZE = 224
CLIPS = 5
CLIP_SECONDS = 2
CROPS = 3


def preprocess_video(data: bytes, limits: MediaLimits, guard: DecodeGuard) -> torch.Tensor:
    """Encoded video bytes → float32 ``[1, 15, 3, 2, 224, 224]``."""
    resizer = FrameResizer()

    def check(frame: av.VideoFrame) -> None:
        _check_frame_size(frame.width, frame.height, limits)
        # Frames larger than the header said: hold what they need too, or refuse.
        guard.reserve(
            decoded_bytes(frame.width, frame.height) - guard.reserved,
            limits.max_decoded_bytes,
            "video",
        )

    def convert(frame: av.VideoFrame) -> torch.Tensor:
        return resizer(torch.from_numpy(frame.to_ndarray(format="rgb24")))  # [H, W, 3]

    with open_container(data, VIDEO_DEMUXERS, "video", codecs=limits.video_codecs) as container:
        stream, fps = _probe(container, limits)
        open_decoder(stream, limits.video_codecs, "video")
        codec = stream.codec_context
        guard.reserve(decoded_bytes(codec.width, codec.height), limits.max_decoded_bytes, "video")
        cap = min(limits.max_video_frames, math.floor(limits.max_video_seconds * fps))
        packets = index_packets(container, stream, cap, _early_refusal(stream, fps, limits))
        count = stream.frames or len(packets)  # the header's count, as the reference reads it
        _check_count(count, fps, limits)
        plan = frame_plan(count, fps)
        ranks = frame_ranks(packets, bool(codec.has_b_frames)) if count == len(packets) else None
        _check_work(packets_to_decode(packets, ranks, _indices(plan)), codec, limits)
        frames = None
        if ranks is not None:
            frames = decode_selected(
                codec, packets, ranks, _indices(plan), check, convert, guard.check
            )
        if frames is None:
            frames, decoded = decode_sequential(
                codec, packets, _indices(plan), check, convert, guard.check
            )
            if len(frames) < len(_indices(plan)):
                # Fewer frames than declared: plan again over what the stream really holds.
                if decoded == 0:
                    raise MediaError("too_short", "the video stream decodes to no frames")
                plan = frame_plan(decoded, fps)
                frames, _ = decode_sequential(
                    codec, packets, _indices(plan), check, convert, guard.check
                )
    out = torch.empty(1, CLIPS * CROPS, 3, 2, SIZE, SIZE)
    for clip, (first, last) in enumerate(plan):
        pair = torch.stack([frames[first], frames[last]], dim=1)  # [3, 2, H', W']
        for crop, view in enumerate(spatial_crops(pair)):
            out[0, clip * CROPS + crop] = view
    return out  # [1, 15, 3, 2, 224, 224]


#: Frames the decoder holds at once (references and frames in flight), for the
#: reservation: H.264 and HEVC levels keep 6 or fewer at 4K, more at lower sizes.
DECODER_FRAMES = 8


def decoded_bytes(width: int, height: int) -> int:
    """What decoding a ``width`` × ``height`` video holds at once: the decoder's frames
    (4:2:0, up to 16-bit samples), one RGB copy and its float buffer (``FrameResizer``),
    the ≤ 10 sampled frames resized, and the output tensor."""
    pixels = width * height
    resized = 3 * SIZE * math.ceil(SIZE * max(width, height) / max(1, min(width, height))) * 4
    output = CLIPS * CROPS * 3 * 2 * SIZE * SIZE * 4
    return DECODER_FRAMES * pixels * 3 + pixels * 3 + pixels * 12 + 2 * CLIPS * resized + output


#: Display order may trail decode order by this many frames (B-frame reordering).
REORDER_SLACK = 16


def _early_refusal(
    stream: av.video.stream.VideoStream, fps: float, limits: MediaLimits
) -> Callable[[int, int], bool]:
    """While indexing: refuse as soon as a sampled frame (planned from the header's frame
    count) is further from its keyframe than the decode budget allows; the exact count
    after indexing decides every other case."""
    codec = stream.codec_context
    pixels = max(1, codec.width * codec.height)
    wanted = _indices(frame_plan(stream.frames, fps)) if stream.frames else set()
    reach = limits.max_video_decode_pixels // pixels + REORDER_SLACK

    def too_far(position: int, since_keyframe: int) -> bool:
        if since_keyframe > reach and position in wanted:
            raise MediaError(
                "too_complex",
                f"sampled frame {position} is over {since_keyframe - REORDER_SLACK} frames of "
                f"{codec.width}×{codec.height} from its keyframe, over the "
                f"{limits.max_video_decode_pixels / 1e9:g} G-pixel decode limit; "
                "re-encode with a keyframe every few seconds",
            )
        return False

    return too_far


def _check_work(packets: int, codec: av.codec.context.CodecContext, limits: MediaLimits) -> None:
    """Refuse, before decoding, a video whose sampled frames cost too many decoded pixels."""
    pixels = packets * codec.width * codec.height
    if pixels > limits.max_video_decode_pixels:
        raise MediaError(
            "too_complex",
            f"reaching the sampled frames means decoding {packets} frames of "
            f"{codec.width}×{codec.height} ({pixels / 1e9:.1f} G pixels), over the "
            f"{limits.max_video_decode_pixels / 1e9:g} G-pixel limit; "
            "re-encode with a keyframe every few seconds",
        )


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


class FrameResizer:
    """uint8 ``[H, W, 3]`` → normalised float32 ``[3, H', W']``, short side 224 (step 4).

    One float buffer, channels-last like the decoded frame, is reused for every
    frame of a video: no full-size temporaries per frame. The resize runs on the
    buffer viewed as ``[3, 1, H, W]`` (3 images of 1 channel), which keeps torch
    on its generic bilinear kernel whatever its intra-op thread count; a
    ``[1, 3, H, W]`` input switches to another kernel with one thread (torch
    picks it for C == 3), which moves results by ~5e-7.
    """

    def __init__(self) -> None:
        self._buffer: torch.Tensor | None = None

    def __call__(self, rgb: torch.Tensor) -> torch.Tensor:
        height, width = rgb.shape[:2]
        if width < height:
            size = (math.floor(height / width * SIZE), SIZE)
        else:
            size = (SIZE, math.floor(width / height * SIZE))
        if self._buffer is None or self._buffer.shape != rgb.shape:
            self._buffer = torch.empty(rgb.shape, dtype=torch.float32)
        frame = self._buffer.copy_(rgb).div_(255.0)  # [H, W, 3], same rounding as x / 255.0
        planes = frame.permute(2, 0, 1).unsqueeze(1)  # [3, 1, H, W] view
        scaled = F.interpolate(planes, size=size, mode="bilinear", align_corners=False)
        return normalize_clip(scaled[:, 0])  # [3, H', W']


def process_frame(rgb: torch.Tensor) -> torch.Tensor:
    """One frame through a fresh ``FrameResizer`` (uint8 ``[H, W, 3]`` → ``[3, H', W']``)."""
    return FrameResizer()(rgb)


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


def _probe(
    container: av.container.InputContainer, limits: MediaLimits
) -> tuple[av.video.stream.VideoStream, float]:
    """The first video stream and its average fps, refusing over-limit geometry or
    duration from the headers before any packet is read."""
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
    if stream.frames:
        _check_count(stream.frames, fps, limits)
    return stream, fps


def _check_count(count: int, fps: float, limits: MediaLimits) -> None:
    if count <= 0:
        raise MediaError("too_short", "the video stream has no frames")
    if count > limits.max_video_frames or count / fps > limits.max_video_seconds:
        raise MediaError("too_long", _too_long(count / fps, limits))


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
