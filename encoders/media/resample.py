"""Band-limited resampling to 16 kHz (windowed sinc, Hann window, polyphase).

Reference step: ``torchaudio.functional.resample`` with its defaults
(``sinc_interp_hann``, ``lowpass_filter_width=6``, ``rolloff=0.99``), written
here from the maths:

- Reduce the rates by their gcd: ``orig``, ``new`` (44100 → 16000 is 441 → 160).
- Cut-off ``base = min(orig, new) · rolloff`` in reduced units; the kernel spans
  ``width = ceil(lpw · orig / base)`` input samples each side.
- Output sample ``f·new + i`` (frame f, phase i) sits at input time
  ``f·orig + i·orig/new``. Its tap on input ``f·orig + j`` (j ∈ [−width,
  width + orig)) has offset ``t = (j/orig − i/new) · base`` (in cut-off periods),
  clamped to ±lpw, and weight ``sinc(πt) · cos²(πt / 2lpw) · base/orig``.
- One strided 1-D convolution with the ``[new, 1, 2·width + orig]`` bank over the
  signal zero-padded by ``width`` left and ``width + orig`` right, phases
  interleaved, cut to ``ceil(new · length / orig)`` samples.

Kernels are built in float32 in the reference's order of operations, so the
output matches it to float32 rounding; they are cached per rate pair.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch
import torch.nn.functional as F

from .errors import MediaError

LOWPASS_FILTER_WIDTH = 6
ROLLOFF = 0.99


def reduced_rates(orig_rate: int, new_rate: int) -> tuple[int, int, int]:
    """(orig, new, width) of the polyphase filter for a rate pair."""
    gcd = math.gcd(orig_rate, new_rate)
    orig, new = orig_rate // gcd, new_rate // gcd
    base = min(orig, new) * ROLLOFF
    return orig, new, math.ceil(LOWPASS_FILTER_WIDTH * orig / base)


def kernel_size(orig_rate: int, new_rate: int) -> int:
    """Number of filter taps the pair needs (new × (orig + 2·width))."""
    orig, new, width = reduced_rates(orig_rate, new_rate)
    return new * (orig + 2 * width)


@lru_cache(maxsize=16)
def sinc_kernel(orig: int, new: int, width: int) -> torch.Tensor:
    """Polyphase bank ``[new, 1, 2·width + orig]`` (float32; cached, treat as read-only)."""
    lpw = LOWPASS_FILTER_WIDTH
    base = min(orig, new) * ROLLOFF
    taps = torch.arange(-width, width + orig, dtype=torch.float32) / orig  # [K] j/orig
    phases = torch.arange(0, -new, -1, dtype=torch.float32) / new  # [new] −i/new
    t = (phases[:, None] + taps[None, :]) * base  # [new, K], in cut-off periods
    t = t.clamp(-lpw, lpw)
    window = torch.cos(t * math.pi / lpw / 2) ** 2
    t = t * math.pi
    sinc = torch.where(t == 0, torch.ones_like(t), torch.sin(t) / t)
    kernel = sinc * (window * (base / orig))
    return kernel[:, None, :]  # [new, 1, K]


def resample(waveform: torch.Tensor, orig_rate: int, new_rate: int) -> torch.Tensor:
    """Resample float32 ``[C, L]`` from ``orig_rate`` to ``new_rate`` → ``[C, L']``."""
    if orig_rate == new_rate:
        return waveform
    return resample_ranges(
        waveform, orig_rate, new_rate, [(0, output_length(waveform, orig_rate, new_rate))]
    )


def output_length(waveform: torch.Tensor, orig_rate: int, new_rate: int) -> int:
    """Samples ``resample`` returns: ceil(new·L / orig) in reduced rates (exact integers)."""
    if orig_rate == new_rate:
        return int(waveform.shape[1])
    orig, new, _ = reduced_rates(orig_rate, new_rate)
    return -(-new * int(waveform.shape[1]) // orig)


def resample_ranges(
    waveform: torch.Tensor, orig_rate: int, new_rate: int, ranges: list[tuple[int, int]]
) -> torch.Tensor:
    """``resample`` computed only over the output sample ``ranges`` [start, end); the
    other samples are 0. The values, shape and strides inside the ranges are those of
    ``resample``: each polyphase frame is one dot product over its own window, so
    convolving a slice gives the same bits as convolving the whole signal.

    Why: ImageBind reads three 2 s clips, so a long recording needs a few seconds
    resampled, not all of it.
    """
    if orig_rate <= 0 or new_rate <= 0:
        raise MediaError("unsupported_format", f"sample rate {orig_rate} Hz is not valid")
    orig, new, width = reduced_rates(orig_rate, new_rate)
    kernel = sinc_kernel(orig, new, width)  # [new, 1, K]
    taps = kernel.shape[-1]
    channels, length = waveform.shape
    # Frames of F.pad(waveform, (width, width + orig)) convolved with stride orig.
    frames = (length + 2 * width + orig - taps) // orig + 1
    out = torch.zeros(channels, frames, new)  # frame f phase i is output sample f·new + i
    for start, end in frame_spans(ranges, new, frames):
        out[:, start:end] = resample_frames(waveform, 0, length, orig, width, kernel, start, end)
    target = -(-new * length // orig)  # ceil(new·L / orig), exact in integers
    return out.reshape(channels, -1)[:, :target]


def resample_frames(
    source: torch.Tensor,
    source_start: int,
    length: int,
    orig: int,
    width: int,
    kernel: torch.Tensor,
    start: int,
    end: int,
) -> torch.Tensor:
    """Polyphase frames [start, end) of a ``length``-sample signal → ``[C, end − start, new]``.

    ``source`` holds the signal's samples from ``source_start`` on (``[C, n]``), at least
    every sample those frames read inside [0, length); outside the signal they read 0.
    """
    taps = kernel.shape[-1]
    # Input of the frames in padded coordinates.
    first, last = start * orig - width, (end - 1) * orig + taps - width
    lo, hi = max(0, first), min(length, last)
    window = torch.empty(source.shape[0], last - first)
    window[:, : lo - first] = 0
    window[:, hi - first :] = 0
    window[:, lo - first : hi - first] = source[:, lo - source_start : hi - source_start]
    # [C, 1, W] * [new, 1, K] stride orig → [C, new, end − start]
    phased = F.conv1d(window[:, None, :], kernel, stride=orig)
    return phased.transpose(1, 2)


def frame_spans(ranges: list[tuple[int, int]], new: int, frames: int) -> list[tuple[int, int]]:
    """Output sample ranges → merged, sorted polyphase frame ranges [start, end)."""
    spans = sorted(
        (start // new, min(frames, -(-end // new))) for start, end in ranges if end > start
    )
    merged: list[tuple[int, int]] = []
    for start, end in spans:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        elif start < end:
            merged.append((start, end))
    return merged
