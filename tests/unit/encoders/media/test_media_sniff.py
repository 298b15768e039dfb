"""sniff(): media type from magic bytes."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from encoders.media import sniff


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF"])
def test_images(fmt):
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, format=fmt)
    assert sniff(buffer.getvalue()) == fmt.lower()


@pytest.mark.parametrize(
    ("container", "codec", "rate", "name"),
    [
        ("wav", "pcm_s16le", 16000, "wav"),
        ("flac", "flac", 16000, "flac"),
        ("mp3", "libmp3lame", 16000, "mp3"),
        ("ogg", "libopus", 48000, "ogg"),
        ("ipod", "aac", 16000, "m4a"),
        ("webm", "libopus", 48000, "webm"),
        ("adts", "aac", 16000, "aac"),
    ],
)
def test_audio(make, container, codec, rate, name):
    assert sniff(make.audio(make.sine(0.2, rate), rate, container, codec)) == name


@pytest.mark.parametrize(
    ("container", "codec", "name"),
    [
        ("mp4", "mpeg4", "mp4"),
        ("mov", "mpeg4", "mov"),
        ("matroska", "mpeg4", "mkv"),
        ("webm", "libvpx", "webm"),
        ("avi", "mpeg4", "avi"),
    ],
)
def test_video(make, container, codec, name):
    assert sniff(make.video(make.frames(2, 16, 16), 10, container, codec)) == name


def test_fixture_media(media):
    assert sniff(media("bird_image.jpg")) == "jpeg"
    assert sniff(media("bird_audio.wav")) == "wav"
    assert sniff(media("a.mp4")) == "mp4"


def test_quicktime_without_ftyp():
    assert sniff(b"\x00\x00\x00\x08wide\x00\x00\x10\x00mdat") == "mov"


def test_npy_and_csv():
    buffer = io.BytesIO()
    np.save(buffer, np.zeros((6, 3)))
    assert sniff(buffer.getvalue()) == "npy"
    assert sniff(b"ax,ay,az,gx,gy,gz\n1,2,3,4,5,6\n-1.5e-3,2,3,4,5,6\n") == "csv"
    assert sniff(b"1\t2\t3\n4\t5\t6") == "csv"


@pytest.mark.parametrize(
    "data", [b"", b"\x00", b"hello world", b"just some prose, with commas.\n", bytes(range(256))]
)
def test_unknown(data):
    assert sniff(data) is None
