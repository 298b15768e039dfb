"""Kaldi-compatible log mel filterbank (the audio tower's input features).

Reference step: ``torchaudio.compliance.kaldi.fbank`` as ImageBind calls it
(htk_compat, use_energy False, window "hanning", 128 mel bins, dither 0,
25 ms / 10 ms at 16 kHz), written here from Kaldi's definition because
kaldi-native-fbank refuses 128 bins at this frame size (docs/DESIGN.md §2):

1. Frames of 400 samples every 160 (snip_edges: 1 + (L − 400) // 160 frames).
2. Per frame: subtract its mean (DC), pre-emphasis x[n] − 0.97·x[n−1] with
   x[−1] = x[0], symmetric Hann window, zero-pad to 512.
3. Power spectrum |rfft|², 257 bins.
4. 128 triangular filters equally spaced on the mel scale
   ``1127·ln(1 + f/700)`` between 20 Hz and 8 kHz, triangles in the mel domain,
   over FFT bins 0..255 (the Nyquist bin gets weight 0).
5. ``log(max(energy, float32 eps))``. htk_compat without energy changes nothing
   else. Output ``[frames, 128]``.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch
import torch.nn.functional as F

SAMPLE_RATE = 16_000
FRAME_LENGTH = 400  # 25 ms
FRAME_SHIFT = 160  # 10 ms
FFT_SIZE = 512  # next power of two
MEL_BINS = 128
LOW_FREQ = 20.0
HIGH_FREQ = SAMPLE_RATE / 2
PREEMPHASIS = 0.97


def _mel(freq: torch.Tensor) -> torch.Tensor:
    """Kaldi / HTK mel scale of frequencies in Hz."""
    return 1127.0 * torch.log(1.0 + freq / 700.0)


def _mel_scalar(freq: float) -> float:
    return 1127.0 * math.log(1.0 + freq / 700.0)


@lru_cache(maxsize=4)
def mel_banks(mel_bins: int = MEL_BINS) -> torch.Tensor:
    """Triangular filters ``[mel_bins, FFT_SIZE // 2 + 1]`` (float32; cached, read-only)."""
    fft_bins = FFT_SIZE // 2
    mel_low, mel_high = _mel_scalar(LOW_FREQ), _mel_scalar(HIGH_FREQ)
    delta = (mel_high - mel_low) / (mel_bins + 1)
    index = torch.arange(mel_bins).unsqueeze(1)  # [M, 1]
    left = mel_low + index * delta  # [M, 1]
    center = mel_low + (index + 1.0) * delta
    right = mel_low + (index + 2.0) * delta
    bin_mel = _mel((SAMPLE_RATE / FFT_SIZE) * torch.arange(fft_bins)).unsqueeze(0)  # [1, N]
    up = (bin_mel - left) / (center - left)  # [M, N]
    down = (right - bin_mel) / (right - center)
    banks = torch.clamp_min(torch.minimum(up, down), 0.0)
    return F.pad(banks, (0, 1))  # Nyquist bin: weight 0 → [M, N + 1]


@lru_cache(maxsize=1)
def _window() -> torch.Tensor:
    """Symmetric Hann window of one frame (Kaldi "hanning")."""
    return torch.hann_window(FRAME_LENGTH, periodic=False, dtype=torch.float32)


def fbank(signal: torch.Tensor, mel_bins: int = MEL_BINS) -> torch.Tensor:
    """Log mel energies of a 16 kHz float32 signal ``[L]`` → ``[frames, mel_bins]``."""
    if signal.numel() < FRAME_LENGTH:
        return torch.zeros(0, mel_bins, dtype=torch.float32)
    frames = signal.unfold(0, FRAME_LENGTH, FRAME_SHIFT)  # [T, 400]
    frames = frames - frames.mean(dim=1, keepdim=True)
    previous = torch.cat([frames[:, :1], frames[:, :-1]], dim=1)  # x[n−1], x[−1] = x[0]
    frames = frames - PREEMPHASIS * previous
    frames = F.pad(frames * _window(), (0, FFT_SIZE - FRAME_LENGTH))  # [T, 512]
    power = torch.fft.rfft(frames).abs().pow(2.0)  # [T, 257]
    energies = torch.mm(power, mel_banks(mel_bins).T)  # [T, M]
    eps = torch.tensor(torch.finfo(torch.float32).eps, dtype=torch.float32)
    return torch.maximum(energies, eps).log()
