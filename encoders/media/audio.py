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

Our additions: the demuxer comes from the magic bytes; duration, sample rate and
channel count are capped from the header and again while decoding; audio shorter
than one 25 ms frame is refused (``too_short``; the reference would return pure
padding).
"""

from __future__ import annotations

import math

import av
import numpy as np
import torch

from . import fbank as kaldi
from .clips import clip_timepoints
from .container import AUDIO_DEMUXERS, open_container
from .errors import MediaError
from .limits import MediaLimits
from .resample import kernel_size, resample

SAMPLE_RATE = kaldi.SAMPLE_RATE
CLIPS = 3
CLIP_SECONDS = 2
TARGET_FRAMES = 204
FBANK_MEAN = -4.268
FBANK_STD = 9.138

# Integer sample formats → the divisor that maps them to [−1, 1).
_INT_SCALE = {np.dtype(np.int16): 32768.0, np.dtype(np.int32): 2.0**31, np.dtype(np.int64): 2.0**63}


def preprocess_audio(data: bytes, limits: MediaLimits) -> torch.Tensor:
    """Encoded audio bytes → float32 ``[1, 3, 1, 128, 204]``."""
    return features(load_waveform_16k(data, limits))


def load_waveform_16k(data: bytes, limits: MediaLimits) -> torch.Tensor:
    """Decode and resample to 16 kHz → float32 ``[C, L]`` (steps 1–2)."""
    waveform, rate = decode(data, limits)
    if rate != SAMPLE_RATE and kernel_size(rate, SAMPLE_RATE) > limits.max_resample_kernel:
        raise MediaError("unsupported_format", f"sample rate {rate} Hz cannot be resampled cheaply")
    waveform = resample(waveform, rate, SAMPLE_RATE)
    if waveform.shape[1] < kaldi.FRAME_LENGTH:
        raise MediaError("too_short", "audio is shorter than one 25 ms analysis frame")
    return waveform


def features(waveform: torch.Tensor) -> torch.Tensor:
    """16 kHz ``[C, L]`` → normalised fbank clips ``[1, 3, 1, 128, 204]`` (steps 3–5).

    Modifies ``waveform`` in place (step 4), as the reference does.
    """
    duration = waveform.shape[1] / SAMPLE_RATE
    clips = []
    for start, end in clip_timepoints(duration, CLIP_SECONDS, CLIPS):
        clip = waveform[:, int(start * SAMPLE_RATE) : int(end * SAMPLE_RATE)]  # view [C, ≤32000]
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
    """Decode the first audio stream → (float32 ``[C, L]`` in [−1, 1], sample rate)."""
    with open_container(data, AUDIO_DEMUXERS, "audio") as container:
        if not container.streams.audio:
            raise MediaError("no_audio_stream", "the file holds no audio stream")
        stream = container.streams.audio[0]
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
    can lie; implicit-SBR AAC really does double its declared rate) → ([C, L], rate)."""
    chunks: list[np.ndarray] = []
    total = 0
    rate = channels = max_samples = 0
    for frame in container.decode(stream):
        chunk = _frame_to_float(frame)  # [C, n]
        if not chunks:
            rate, channels = frame.sample_rate, chunk.shape[0]
            if not limits.min_audio_sample_rate <= rate <= limits.max_audio_sample_rate:
                raise MediaError("unsupported_format", f"sample rate {rate} Hz is not supported")
            if channels > limits.max_audio_channels:
                raise MediaError("unsupported_format", f"{channels} channels, over the limit")
            max_samples = math.floor(limits.max_audio_seconds * rate)
        elif frame.sample_rate != rate or chunk.shape[0] != channels:
            raise MediaError(
                "unsupported_format", "sample rate or channel count changes mid-stream"
            )
        total += chunk.shape[1]
        if total > max_samples:
            raise MediaError(
                "too_long", f"audio decodes to over the {limits.max_audio_seconds:g} s limit"
            )
        chunks.append(chunk)
    if total == 0:
        raise MediaError("too_short", "the audio stream decodes to no samples")
    return torch.from_numpy(np.concatenate(chunks, axis=1)), rate


def _frame_to_float(frame: av.AudioFrame) -> np.ndarray:
    """One decoded frame → float32 ``[C, n]`` in [−1, 1]."""
    array = frame.to_ndarray()
    channels = frame.layout.nb_channels
    if not frame.format.is_planar:
        array = array.reshape(-1, channels).T  # packed [1, n·C] → [C, n]
    if array.dtype == np.uint8:
        return (array.astype(np.float32) - 128.0) / 128.0
    scale = _INT_SCALE.get(array.dtype)
    if scale is not None:
        return (array.astype(np.float64) / scale).astype(np.float32)
    return array.astype(np.float32, copy=False)
