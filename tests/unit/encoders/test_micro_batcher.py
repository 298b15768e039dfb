"""Encoder: batching across concurrent callers, per-item failure isolation, outputs."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from encoders.imagebind.config import ImageBindConfig
from encoders.imagebind.model import ImageBindModel
from encoders.imagebind.tokenizer import CLIPTokenizer
from encoders.micro_batcher import Encoder

FIXTURES = Path(__file__).parents[2] / "fixtures"
ATOL = 1e-5


@pytest.fixture(scope="module")
def model() -> ImageBindModel:
    args = json.loads((FIXTURES / "imagebind" / "tiny_config.json").read_text())
    m = ImageBindModel(ImageBindConfig(**args["constructor_args"])).eval()
    m.load_state_dict(load_file(FIXTURES / "imagebind" / "tiny_weights.safetensors"))
    return m


@pytest.fixture(scope="module")
def tokenizer() -> CLIPTokenizer:
    return CLIPTokenizer()


def images(n: int, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(1, 3, 224, 224, generator=g) for _ in range(n)]


def assert_close(got: torch.Tensor, ref: torch.Tensor) -> None:
    diff = (got - ref).abs()
    assert diff.max().item() <= ATOL, f"max {diff.max().item():.3e} mean {diff.mean().item():.3e}"


async def test_concurrent_calls_are_batched(model: ImageBindModel) -> None:
    xs = images(8)
    async with Encoder(model, max_batch_size=8, max_wait_ms=200) as enc:
        got = await asyncio.gather(*(enc.encode_input("image", x) for x in xs))
        assert enc.stats.forward_calls in (1, 2)
        assert enc.stats.items == 8
    with torch.inference_mode():
        for x, feat in zip(xs, got, strict=True):
            assert feat.shape == (32,) and feat.dtype == torch.float32
            assert not feat.is_inference()
            assert_close(feat, model.pandagpt_features({"vision": x})["vision"][0])


async def test_batch_size_is_bounded(model: ImageBindModel) -> None:
    async with Encoder(model, max_batch_size=3, max_wait_ms=100) as enc:
        await asyncio.gather(*(enc.encode_input("image", x) for x in images(7)))
        assert max(enc.stats.batch_sizes) <= 3
        assert enc.stats.forward_calls >= 3 and enc.stats.items == 7


async def test_images_and_videos_batch_separately(model: ImageBindModel) -> None:
    g = torch.Generator().manual_seed(1)
    videos = [torch.randn(1, 2, 3, 2, 224, 224, generator=g) for _ in range(2)]
    async with Encoder(model, max_batch_size=8, max_wait_ms=200) as enc:
        got = await asyncio.gather(
            *(enc.encode_input("image", x) for x in images(3)),
            *(enc.encode_input("video", v) for v in videos),
        )
        assert enc.stats.forward_calls == 2
        assert set(enc.stats.batches_by_key) == {
            "vision[3, 224, 224]",
            "vision[2, 3, 2, 224, 224]",
        }
    with torch.inference_mode():
        for v, feat in zip(videos, got[3:], strict=True):
            # mean over clips of L2-normed vision outputs (the reference 6-D forward)
            assert_close(feat, model.pandagpt_features({"vision": v})["vision"][0])


async def test_embed_is_upstream_normalised(model: ImageBindModel, tokenizer) -> None:
    g = torch.Generator().manual_seed(2)
    audio = torch.randn(1, 3, 1, 128, 204, generator=g)
    async with Encoder(model, max_batch_size=4, max_wait_ms=100, tokenizer=tokenizer) as enc:
        text, emb, feat = await asyncio.gather(
            enc.embed("text", "a dog barking"),
            enc.embed("audio", audio),
            enc.encode_input("audio", audio),
        )
        assert enc.stats.forward_calls == 2  # the two audio requests share one forward
    with torch.inference_mode():
        ref_text = model({"text": tokenizer(["a dog barking"])})["text"][0]
        ref_audio = model({"audio": audio})["audio"][0]
        ref_feat = model.pandagpt_features({"audio": audio})["audio"][0]
    assert_close(text, F.normalize(ref_text, dim=-1))
    assert_close(emb, F.normalize(ref_audio, dim=-1))
    assert_close(feat, ref_feat)  # PandaGPT audio: L2-norm only, no ×scale
    assert text.norm().item() == pytest.approx(1.0, abs=1e-6)


async def test_bad_bytes_fail_only_their_item(model: ImageBindModel) -> None:
    from encoders.media import MediaError

    dog = (FIXTURES / "media" / "dog_image.jpg").read_bytes()
    car = (FIXTURES / "media" / "car_image.jpg").read_bytes()
    async with Encoder(model, max_batch_size=8, max_wait_ms=200) as enc:
        results = await asyncio.gather(
            enc.encode("image", dog),
            enc.encode("image", b"definitely not an image"),
            enc.encode("image", car),
            return_exceptions=True,
        )
    assert isinstance(results[1], MediaError)
    assert all(isinstance(r, torch.Tensor) and r.shape == (32,) for r in (results[0], results[2]))


async def test_bad_tensor_fails_only_its_item(model: ImageBindModel) -> None:
    xs = images(2)
    async with Encoder(model, max_batch_size=8, max_wait_ms=100) as enc:
        results = await asyncio.gather(
            enc.encode_input("image", xs[0]),
            enc.encode_input("image", torch.zeros(1, 3, 100, 100)),
            enc.encode_input("image", xs[1]),
            return_exceptions=True,
        )
    assert isinstance(results[1], ValueError) and "[3, 224, 224]" in str(results[1])
    assert isinstance(results[0], torch.Tensor) and isinstance(results[2], torch.Tensor)


async def test_forward_error_is_isolated_to_its_item(model: ImageBindModel, tokenizer) -> None:
    bad = tokenizer(["a cat"])[0].clone()
    bad[1] = 10**6  # out of vocabulary: fails inside the embedding lookup
    async with Encoder(model, max_batch_size=8, max_wait_ms=100, tokenizer=tokenizer) as enc:
        good, broken = await asyncio.gather(
            enc.embed("text", "a cat"), enc._submit("text", bad, "embed"), return_exceptions=True
        )
        assert enc.stats.failed_forwards == 2  # the batch, then the lone bad item
    assert isinstance(good, torch.Tensor) and isinstance(broken, IndexError)


async def test_forward_runs_off_the_event_loop(model: ImageBindModel) -> None:
    seen: list[str] = []
    original = model.encode_heads

    def spy(*args, **kwargs):
        seen.append(threading.current_thread().name)
        return original(*args, **kwargs)

    model.encode_heads = spy  # type: ignore[method-assign]
    try:
        async with Encoder(model, max_wait_ms=0) as enc:
            await enc.encode_input("imu", torch.randn(6, 2000))
    finally:
        del model.encode_heads
    assert seen and all(name.startswith("imagebind-forward") for name in seen)


async def test_cancelled_caller_does_not_break_batch(model: ImageBindModel) -> None:
    xs = images(3)
    async with Encoder(model, max_batch_size=8, max_wait_ms=100) as enc:
        tasks = [asyncio.create_task(enc.encode_input("image", x)) for x in xs]
        await asyncio.sleep(0)
        tasks[1].cancel()
        done = await asyncio.gather(*tasks, return_exceptions=True)
        assert isinstance(done[1], asyncio.CancelledError)
        assert enc.stats.items == 2
    assert isinstance(done[0], torch.Tensor) and isinstance(done[2], torch.Tensor)


async def test_closed_encoder_refuses(model: ImageBindModel) -> None:
    enc = Encoder(model)
    await enc.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await enc.encode_input("imu", torch.randn(6, 2000))
    async with Encoder(model) as enc:
        with pytest.raises(ValueError, match="text"):
            await enc.encode_input("text", torch.zeros(77, dtype=torch.long))


async def test_close_during_forward_fails_waiting_callers(model: ImageBindModel) -> None:
    enc = Encoder(model, max_wait_ms=0)
    task = asyncio.create_task(enc.encode_input("video", torch.randn(4, 3, 2, 224, 224)))
    while enc.stats.forward_calls == 0:
        await asyncio.sleep(0.001)
    await enc.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await task


async def test_on_batch_observer(model: ImageBindModel) -> None:
    seen: list[tuple[str, int, float]] = []

    def observe(modality: str, size: int, seconds: float) -> None:
        seen.append((modality, size, seconds))
        raise RuntimeError("a broken hook")  # must not affect callers

    async with Encoder(model, max_batch_size=4, max_wait_ms=100, on_batch=observe) as enc:
        feats = await asyncio.gather(*(enc.encode_input("image", x) for x in images(2)))
    assert len(feats) == 2
    assert [(m, n) for m, n, _ in seen] == [("image", 2)] and seen[0][2] > 0


async def test_a_cancelled_encode_stops_its_decoding_between_packets(model: ImageBindModel) -> None:
    """The caller goes away: the pool thread stops at its next packet instead of decoding
    the rest, and gives back the reservation the item held."""
    import time

    from encoders.media import MediaLimits, preprocess
    from harness.bombs import long_gop_video

    # 18,000 frames after one keyframe: seconds of decoding when the budgets allow it.
    video = long_gop_video(frames=18_000, width=640, height=360)
    limits = MediaLimits(max_video_decode_pixels=10**12, max_decode_cpu_s=120)
    start = time.perf_counter()
    await asyncio.to_thread(preprocess, "video", video, limits)
    whole = time.perf_counter() - start

    held: list[int] = []

    def reserve(nbytes: int, what: str):
        held.append(nbytes)
        return lambda: held.remove(nbytes)

    async with Encoder(model, max_wait_ms=1, limits=limits, reserve=reserve) as encoder:
        task = asyncio.create_task(encoder.encode("video", video))
        while not held:  # decoding has begun: its size is reserved
            await asyncio.sleep(0.005)
        task.cancel()
        cancelled_at = time.perf_counter()
        with pytest.raises(asyncio.CancelledError):
            await task
        while held and time.perf_counter() - cancelled_at < whole:
            await asyncio.sleep(0.005)
        stopped_after = time.perf_counter() - cancelled_at
    assert held == [] and stopped_after < whole / 2, (stopped_after, whole)
