"""Audio: decoders, channel/rate handling, short clips, resampler and fbank maths."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from encoders.media import MediaError, MediaLimits, preprocess
from encoders.media.audio import features, load_waveform_16k
from encoders.media.clips import clip_timepoints
from encoders.media.fbank import fbank, mel_banks
from encoders.media.resample import resample

PAD_VALUE = (0.0 + 4.268) / 9.138  # a zero-padded fbank column after normalisation


@pytest.mark.parametrize(
    ("container", "codec", "rate"),
    [
        ("wav", "pcm_s16le", 44100),
        ("flac", "flac", 22050),
        ("mp3", "libmp3lame", 44100),
        ("ogg", "libopus", 48000),
        ("ipod", "aac", 44100),
        ("webm", "libopus", 48000),
    ],
)
def test_common_containers_decode(make, container, codec, rate):
    data = make.audio(make.sine(2.5, rate, channels=2), rate, container, codec)
    out = preprocess("audio", data)
    assert out.shape == (1, 3, 1, 128, 204) and out.dtype == torch.float32
    assert torch.isfinite(out).all()


def test_16k_mono_pcm_is_not_resampled(make):
    tone = make.sine(3.0, 16000)
    wave = load_waveform_16k(make.audio(tone, 16000), MediaLimits())
    expected = np.clip(np.round(tone * 32767), -32768, 32767) / 32768.0
    assert wave.shape == (1, 48000)
    assert torch.equal(wave, torch.from_numpy(expected.astype(np.float32)))


def test_short_audio_clips_start_at_zero_and_fbank_is_padded(make):
    # 1 s: every clip is [0, 1 s) → 98 frames, columns 98.. are padding.
    out = preprocess("audio", make.audio(make.sine(1.0, 44100, channels=2), 44100))
    assert out.shape == (1, 3, 1, 128, 204)
    assert torch.allclose(out[..., 98:], torch.full_like(out[..., 98:], PAD_VALUE))
    assert not torch.allclose(out[..., 97], torch.full_like(out[..., 97], PAD_VALUE))
    # All three clips are [0, 1 s); later ones only remove a float-noise mean again.
    assert (out[0, 1] - out[0, 0]).abs().max() < 1e-3


def test_clip_timepoints_are_exact_fractions():
    assert [(float(s), float(e)) for s, e in clip_timepoints(5.0, 2, 3)] == [
        (0.0, 2.0),
        (1.5, 3.5),
        (3.0, 5.0),
    ]
    assert all(s == 0 for s, _ in clip_timepoints(1.2, 2, 3))


def test_mean_removal_is_in_place_and_sequential():
    """Overlapping clips: the second clip's mean is taken after the first's shift."""
    wave = torch.full((2, 80000), 0.25)  # 5 s of DC
    features(wave)
    # Clip 0 [0, 32000) has mean 0.25 → 0. Clip 1 [24000, 56000) then has mean
    # 0.25·24/32 = 0.1875; clip 2 [48000, 80000) then (0.0625·8 + 0.25·24)/32 = 0.203125.
    expected = {
        (0, 24000): 0.0,
        (24000, 32000): -0.1875,
        (32000, 48000): 0.0625,
        (48000, 56000): 0.0625 - 0.203125,
        (56000, 80000): 0.25 - 0.203125,
    }
    for (start, end), value in expected.items():
        assert torch.allclose(wave[:, start:end], torch.full((2, end - start), value), atol=1e-6)


def test_resample_preserves_a_tone_and_lengths():
    rate = 44100
    t = torch.arange(rate * 2, dtype=torch.float64) / rate
    tone = torch.sin(2 * math.pi * 1000 * t).float()[None]  # [1, 88200]
    out = resample(tone, rate, 16000)
    assert out.shape == (1, 32000)
    expected = torch.sin(2 * math.pi * 1000 * torch.arange(32000) / 16000)
    # Away from the edges a 1 kHz tone passes the 7.92 kHz low-pass unchanged.
    assert (out[0, 500:-500] - expected[500:-500]).abs().max() < 2e-3
    assert resample(torch.zeros(2, 1000), 8000, 16000).shape == (2, 2000)
    assert resample(torch.zeros(1, 1001), 48000, 16000).shape == (1, 334)  # ceil


def test_resample_matches_float64_sinc_interpolation():
    """Direct evaluation of the windowed-sinc sum at a few output instants."""
    rate, new = 22050, 16000
    x = torch.randn(1, 4000, generator=torch.Generator().manual_seed(0))
    out = resample(x, rate, new)
    base, lpw = min(441, 320) * 0.99, 6  # reduced rates 441 → 320
    for n in (1000, 1234, 2000):
        time = n / new  # seconds
        k = np.arange(4000)
        offset = (k / rate - time) * base * 50  # in cut-off periods (rates ÷ 50 = gcd)
        offset = np.clip(offset, -lpw, lpw)
        weights = np.sinc(offset) * np.cos(np.pi * offset / (2 * lpw)) ** 2 * base / 441
        assert abs(float(x[0].double().numpy() @ weights) - out[0, n].item()) < 1e-5


def test_mel_banks_shape_and_triangles():
    banks = mel_banks()
    assert banks.shape == (128, 257)
    assert banks[:, -1].eq(0).all() and banks[:, 0].eq(0).all()  # DC (0 Hz < 20 Hz) and Nyquist
    assert banks.max() <= 1.0 and banks.min() >= 0.0
    # 128 filters over 256 FFT bins: the narrowest low filter (index 3) falls between
    # two bins and is empty (why kaldi-native-fbank refuses; Kaldi itself computes it,
    # giving log(eps) in that row).
    assert (banks > 0).sum(dim=1).eq(0).nonzero().flatten().tolist() == [3]


def test_fbank_frame_count_and_tone_peak():
    t = torch.arange(32000) / 16000
    tone = torch.sin(2 * math.pi * 1000 * t)
    feats = fbank(tone)
    assert feats.shape == (198, 128)
    peak = feats.mean(0).argmax().item()
    mel = 1127 * math.log(1 + 1000 / 700)
    low, high = 1127 * math.log(1 + 20 / 700), 1127 * math.log(1 + 8000 / 700)
    assert abs(peak - ((mel - low) / ((high - low) / 129) - 1)) <= 1.5
    assert fbank(torch.zeros(399)).shape == (0, 128)


def test_tiny_and_empty_audio_are_refused(make):
    for samples in (0, 100):
        data = make.wav(np.zeros((1, samples), np.int16), 16000)
        with pytest.raises(MediaError) as info:
            preprocess("audio", data)
        assert info.value.reason == "too_short"


def test_odd_sample_rate_is_refused(make):
    data = make.audio(make.sine(0.5, 44101), 44101)
    with pytest.raises(MediaError) as info:
        preprocess("audio", data)
    assert info.value.reason == "unsupported_format"
