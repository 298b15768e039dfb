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
def _sinc_kernel(orig: int, new: int, width: int) -> torch.Tensor:
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
    if orig_rate <= 0 or new_rate <= 0:
        raise MediaError("unsupported_format", f"sample rate {orig_rate} Hz is not valid")
    orig, new, width = reduced_rates(orig_rate, new_rate)
    channels, length = waveform.shape
    padded = F.pad(waveform, (width, width + orig))  # [C, width + L + width + orig]
    # [C, 1, Lp] * [new, 1, K] stride orig → [C, new, frames]; frame f phase i is
    # output sample f·new + i, so interleave by transposing to [C, frames, new].
    phased = F.conv1d(padded[:, None, :], _sinc_kernel(orig, new, width), stride=orig)
    out = phased.transpose(1, 2).reshape(channels, -1)
    target = -(-new * length // orig)  # ceil(new·L / orig), exact in integers
    return out[:, :target]
