"""Audio → audio input ``[1, 3, 1, 128, 204]``.

Reference step: PandaGPT ``data.load_and_transform_audio_data`` (ImageBind's):

1. Decode to float in [−1, 1], all channels (16-bit PCM: int16 / 32768).
2. Resample to 16 kHz (``resample.py``).
3. 3 clips of 2 s, clip k from k·max(duration − 2, 0)/2 (``clips.py``); samples
   [int(start·16000), int(end·16000)).
4. Per clip, in order: subtract the clip's mean over all channels and samples
   **in place on the shared waveform** (later overlapping clips see the shift:
   a reference quirk kept on purpose), then the fbank of channel 0
   (``fbank.py``), transposed to [128, frames], zero-padded or cut to 204.
5. (x + 4.268) / 9.138.

Our additions: the demuxer and the decoder come from allow-lists; duration,
sample rate and channel count are capped from the header and again while
decoding; audio shorter than one 25 ms frame is refused (``too_short``; the
reference would return pure padding). Only the three windows are decoded and
held (``audio_windows.py``), their size reserved before decoding; the whole-file
path below (``load_waveform_16k``, ``features``) stays as the definition that
the windowed path must equal bit for bit.
"""

from __future__ import annotations

import math

import av
import numpy as np
import torch

from . import fbank as kaldi
from .audio_samples import frame_samples, to_float
from .audio_windows import decode_windows, reservation_bytes
from .clips import clip_timepoints
from .container import AUDIO_DEMUXERS, AUDIO_OPTIONS, open_container, open_decoder
from .errors import MediaError
from .guard import DecodeGuard
from .media_limits import MediaLimits
from .resample import kernel_size, resample

__all__ = ["features", "load_waveform_16k", "preprocess_audio"]

SAMPLE_RATE = kaldi.SAMPLE_RATE
CLIPS = 3
CLIP_SECONDS = 2
TARGET_FRAMES = 204
FBANK_MEAN = -4.268
FBANK_STD = 9.138


def preprocess_audio(data: bytes, limits: MediaLimits, guard: DecodeGuard) -> torch.Tensor:
    """Encoded audio bytes → float32 ``[1, 3, 1, 128, 204]``, decoding only the windows
    the clips read: the same bits as ``features(load_waveform_16k(...))``."""
    with open_container(data, AUDIO_DEMUXERS, "audio", AUDIO_OPTIONS, limits.audio_codecs) as box:
        if not box.streams.audio:
            raise MediaError("no_audio_stream", "the file holds no audio stream")
        stream = box.streams.audio[0]
        open_decoder(stream, limits.audio_codecs, "audio")
        _check_declared(box, stream, limits)
        rate = stream.codec_context.sample_rate or 0
        if rate:
            _check_rate(rate, limits)
            guard.reserve(
                reservation_bytes(rate, stream.codec_context.channels or 1),
                limits.max_audio_decoded_bytes,
                "audio",
            )

    found, decoded = decode_windows(
        lambda: open_container(data, AUDIO_DEMUXERS, "audio", AUDIO_OPTIONS, limits.audio_codecs),
        limits,
        guard,
        clip_ranges,
    )
    _check_rate(found.rate, limits)
    _check_length(found.out_length)
    return clip_features(decoded.segments, found.out_length)


def load_waveform_16k(data: bytes, limits: MediaLimits) -> torch.Tensor:
    """Decode and resample to 16 kHz → float32 ``[C, L]`` (steps 1–2)."""
    waveform, rate = decode(data, limits)
    _check_rate(rate, limits)
    waveform = resample(waveform, rate, SAMPLE_RATE)
    _check_length(waveform.shape[1])
    return waveform


def _check_rate(rate: int, limits: MediaLimits) -> None:
    if rate != SAMPLE_RATE and kernel_size(rate, SAMPLE_RATE) > limits.max_resample_kernel:
        raise MediaError("unsupported_format", f"sample rate {rate} Hz cannot be resampled cheaply")


def _check_length(samples: int) -> None:
    if samples < kaldi.FRAME_LENGTH:
        raise MediaError("too_short", "audio is shorter than one 25 ms analysis frame")


def clip_ranges(length: int) -> list[tuple[int, int]]:
    """[start, end) 16 kHz sample range of each clip of a ``length``-sample waveform (step 3)."""
    duration = length / SAMPLE_RATE
    return [
        (int(start * SAMPLE_RATE), min(int(end * SAMPLE_RATE), length))
        for start, end in clip_timepoints(duration, CLIP_SECONDS, CLIPS)
    ]


def features(waveform: torch.Tensor) -> torch.Tensor:
    """16 kHz ``[C, L]`` → normalised fbank clips ``[1, 3, 1, 128, 204]`` (steps 3–5).

    Modifies ``waveform`` in place (step 4), as the reference does.
    """
    return clip_features([(0, waveform)], waveform.shape[1])


def clip_features(segments: list[tuple[int, torch.Tensor]], length: int) -> torch.Tensor:
    """Steps 3–5 over a ``length``-sample 16 kHz waveform known only on ``segments``
    (``(start, [C, n])``, each clip inside one of them). Overlapping clips share a
    segment, so the in-place mean removal of step 4 reaches later clips as in the
    reference."""
    clips = []
    for start, end in clip_ranges(length):
        offset, segment = next((o, s) for o, s in segments if o <= start and end <= o + s.shape[1])
        clip = segment[:, start - offset : end - offset]  # view [C, ≤32000]
        clip -= clip.mean()  # in place: the reference's shared-waveform quirk
        mel = kaldi.fbank(clip[0]).T  # [128, T], T = 198 for a full clip
        frames = mel.shape[1]
        if frames < TARGET_FRAMES:
            mel = torch.nn.functional.pad(mel, (0, TARGET_FRAMES - frames))
        clips.append(mel[:, :TARGET_FRAMES])
    stacked = torch.stack(clips)[:, None]  # [3, 1, 128, 204]
    mean = torch.tensor(FBANK_MEAN, dtype=torch.float32)
    std = torch.tensor(FBANK_STD, dtype=torch.float32)
    return stacked.sub(mean).div(std).unsqueeze(0)  # [1, 3, 1, 128, 204]


def decode(data: bytes, limits: MediaLimits) -> tuple[torch.Tensor, int]:
    """Decode the whole first audio stream → (float32 ``[C, L]`` in [−1, 1], sample rate)."""
    with open_container(data, AUDIO_DEMUXERS, "audio", AUDIO_OPTIONS) as container:
        if not container.streams.audio:
            raise MediaError("no_audio_stream", "the file holds no audio stream")
        stream = container.streams.audio[0]
        open_decoder(stream, limits.audio_codecs, "audio")
        _check_declared(container, stream, limits)
        return decode_stream(container, stream, limits)


def _check_declared(
    container: av.container.InputContainer, stream: av.audio.stream.AudioStream, limits: MediaLimits
) -> None:
    """Refuse from the header alone: too high a rate, too many channels, too long."""
    rate = stream.codec_context.sample_rate or 0
    if rate > limits.max_audio_sample_rate:
        raise MediaError("unsupported_format", f"sample rate {rate} Hz is over the limit")
    if 0 < rate < limits.min_audio_sample_rate:
        raise MediaError("unsupported_format", f"sample rate {rate} Hz is under the limit")
    channels = stream.codec_context.channels
    if channels > limits.max_audio_channels:
        raise MediaError("unsupported_format", f"{channels} channels, over the limit")
    declared = [container.duration / av.time_base if container.duration else 0.0]
    if stream.duration and stream.time_base:
        declared.append(float(stream.duration * stream.time_base))
    if max(declared) > limits.max_audio_seconds:
        raise MediaError(
            "too_long",
            f"audio lasts {max(declared):.1f} s, over the {limits.max_audio_seconds:g} s limit",
        )


def decode_stream(
    container: av.container.InputContainer, stream: av.audio.stream.AudioStream, limits: MediaLimits
) -> tuple[torch.Tensor, int]:
    """Decode all frames, re-checking rate, channels and length as they come (headers
    can lie; implicit-SBR AAC really does double its declared rate) → ([C, L], rate).

    Frames are kept as views of their native samples and converted once, straight
    into the output: per-frame float temporaries and the final concatenation were
    most of a PCM file's decoding time. The arithmetic per sample is unchanged.
    """
    pieces: list[list[np.ndarray]] = []  # per frame: one [n] array per channel
    total = 0
    rate = channels = max_samples = 0
    packed = False
    for frame in container.decode(stream):
        piece = frame_samples(frame)
        if not pieces:
            rate, channels = frame.sample_rate, len(piece)
            packed = not frame.format.is_planar
            if not limits.min_audio_sample_rate <= rate <= limits.max_audio_sample_rate:
                raise MediaError("unsupported_format", f"sample rate {rate} Hz is not supported")
            if channels > limits.max_audio_channels:
                raise MediaError("unsupported_format", f"{channels} channels, over the limit")
            max_samples = math.floor(limits.max_audio_seconds * rate)
        elif frame.sample_rate != rate or len(piece) != channels:
            raise MediaError(
                "unsupported_format", "sample rate or channel count changes mid-stream"
            )
        total += len(piece[0])
        if total > max_samples:
            raise MediaError(
                "too_long", f"audio decodes to over the {limits.max_audio_seconds:g} s limit"
            )
        pieces.append(piece)
    if total == 0:
        raise MediaError("too_short", "the audio stream decodes to no samples")
    # The layout the per-frame arrays used to give: packed (interleaved) formats
    # stay interleaved, [C, L] with strides (1, C). It decides the summation order
    # of the clip means in ``features`` when no resampling copies the waveform.
    if packed:
        out = np.empty((total, channels), dtype=np.float32).T
    else:
        out = np.empty((channels, total), dtype=np.float32)
    at = 0
    for piece in pieces:
        count = len(piece[0])
        for channel, samples in enumerate(piece):
            to_float(samples, out[channel, at : at + count])
        at += count
    return torch.from_numpy(out), rate
