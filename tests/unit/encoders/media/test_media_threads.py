"""preprocess is called from runner threads: concurrent calls give serial results."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import torch

from encoders.media import preprocess


def test_concurrent_calls_match_serial(media, make):
    items = [
        ("image", media("bird_image.jpg")),
        ("thermal", media("190662.jpg")),
        ("audio", media("bird_audio.wav")),
        ("audio", make.audio(make.sine(2.2, 22050, channels=2), 22050)),
        ("video", make.video(make.frames(30, 48, 64), 15)),
    ]
    serial = [preprocess(modality, data) for modality, data in items]
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = [pool.submit(preprocess, m, d) for m, d in items * 2]
        results = [f.result() for f in futures]
    for index, result in enumerate(results):
        assert torch.equal(result, serial[index % len(items)])
