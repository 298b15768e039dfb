"""The encoder's GPU paths: CUDA-graph replay and nvJPEG, bytes in, many items in flight.

    pandagpt bench gpu media --out gpu_media.json          # on a GPU worker
    pandagpt bench gpu media --device cpu --quick          # smoke run (no GPU paths)

ImageBind-huge with random weights (bf16) behind the worker's `Encoder`, the
way the service builds it. Rows, one run:

- batch-1 forward latency of a preprocessed image, eager vs graph replay;
- bytes-in images/s with `--in-flight` JPEGs submitted at once (open loop),
  for exact (Pillow) and fast (nvJPEG on CUDA) preprocessing, each eager and
  with graphs; the images are 12-megapixel photos made here (`--photos`) and
  the fixture photos, every item's bytes unique so nothing is cached;
- fidelity: the fast path's largest per-pixel difference against exact, and the
  cosine of its features against exact's on the same weights (target ≥ 0.9999).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from bench.cli import standalone
from bench.encoder import DTYPES, build_model, small_config
from bench.workload import fixture, unique_bytes
from encoders.imagebind.config import ImageBindConfig
from encoders.media import MediaLimits, preprocess
from encoders.micro_batcher import Encoder

FIXTURE_PHOTOS = ["bird_image.jpg", "car_image.jpg", "dog_image.jpg", "190662.jpg", "210009.jpg"]


def photo(seed: int, size: tuple[int, int] = (4000, 3000)) -> bytes:
    """A photo-like JPEG: smooth colour fields, edges and sensor noise (quality 90)."""
    rng = np.random.default_rng(seed)
    width, height = size
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    planes = []
    for _ in range(3):
        fx, fy, phase = [*rng.uniform(1, 6, 2).tolist(), rng.uniform(0, 6.28)]
        wave = np.sin(xs / width * fx * 6.28 + phase) * np.cos(ys / height * fy * 6.28)
        planes.append(127 + 90 * wave + rng.normal(0, 6, (height, width)))
    rgb = np.clip(np.stack(planes, axis=-1), 0, 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(rgb).save(out, "JPEG", quality=90)
    return out.getvalue()


def batch1_latency_ms(encoder: Encoder, x: torch.Tensor, repeats: int) -> float:
    async def run() -> float:
        times = []
        async with encoder:
            for _ in range(repeats + 3):
                start = time.perf_counter()
                await encoder.encode_input("image", x)
                times.append(time.perf_counter() - start)
        return statistics.median(times[3:]) * 1000

    return asyncio.run(run())


def open_loop(encoder: Encoder, items: list[bytes], warmup: list[bytes]) -> float:
    async def run() -> float:
        async with encoder:
            await asyncio.gather(*(encoder.encode("image", item) for item in warmup))
            start = time.perf_counter()
            await asyncio.gather(*(encoder.encode("image", item) for item in items))
            return len(items) / (time.perf_counter() - start)

    return asyncio.run(run())


def features(encoder: Encoder, items: list[bytes]) -> torch.Tensor:
    async def run() -> list[torch.Tensor]:
        async with encoder:
            return [await encoder.encode("image", item) for item in items]

    return torch.stack(asyncio.run(run())).float()


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="cuda")
    p.add_argument("--dtype", choices=sorted(DTYPES), default="bf16")
    p.add_argument("--quick", action="store_true", help="small config, few small items")
    p.add_argument("--photos", type=int, default=8, help="distinct 12 MP photos to make")
    p.add_argument("--in-flight", type=int, default=128)
    p.add_argument("--preprocess-workers", type=int, default=16)
    p.add_argument("--out", type=Path)


def run(args: argparse.Namespace) -> int:
    device, dtype = torch.device(args.device), DTYPES[args.dtype]
    config = small_config(quick=True) if args.quick else ImageBindConfig.huge()
    model = build_model(config, device, dtype)
    size = (640, 480) if args.quick else (4000, 3000)
    print(f"making {args.photos} photos of {size[0]}x{size[1]}", flush=True)
    sources = [photo(seed, size) for seed in range(args.photos)]
    sources += [fixture(name) for name in FIXTURE_PHOTOS]
    in_flight = 16 if args.quick else args.in_flight
    items = [unique_bytes(sources[i % len(sources)], f"i{i}") for i in range(in_flight)]
    warmup = [unique_bytes(sources[i % len(sources)], f"w{i}") for i in range(32)]

    def encoder(fidelity: str, graphs: bool, dtype: torch.dtype = dtype) -> Encoder:
        return Encoder(
            model,
            device=device,
            dtype=dtype,
            max_batch_size=32,
            preprocess_workers=args.preprocess_workers,
            limits=MediaLimits(fidelity=fidelity),  # type: ignore[arg-type]
            cuda_graphs=graphs,
            gpu_jpeg=fidelity == "fast",
        )

    report: dict[str, object] = {"device": str(device), "dtype": args.dtype}
    if device.type == "cuda":
        report["device"] = torch.cuda.get_device_name(device)
    x = preprocess("image", fixture("dog_image.jpg"))
    for graphs in (False, True):
        ms = batch1_latency_ms(encoder("exact", graphs), x, repeats=5 if args.quick else 50)
        report[f"batch1_ms_{'graph' if graphs else 'eager'}"] = round(ms, 3)
        print(f"batch 1 forward, {'graph' if graphs else 'eager'}: {ms:.2f} ms", flush=True)
    for fidelity in ("exact", "fast"):
        for graphs in (False, True):
            rate = open_loop(encoder(fidelity, graphs), items, warmup)
            name = f"{fidelity}_{'graph' if graphs else 'eager'}"
            report[f"bytes_in_items_per_s_{name}"] = round(rate, 1)
            print(f"bytes in, {len(items)} in flight, {name}: {rate:.1f} images/s", flush=True)
    probe = sources[: min(len(sources), 13)]
    # Fidelity in float32: bf16 rounding would blur the preprocessing's own difference.
    exact = features(encoder("exact", True, torch.float32), probe)
    fast = features(encoder("fast", True, torch.float32), probe)
    cosine = F.cosine_similarity(exact, fast, dim=-1)
    report["fast_cosine_min"] = round(cosine.min().item(), 6)
    report["fast_cosine_mean"] = round(cosine.mean().item(), 6)
    print(f"fast vs exact feature cosine: min {cosine.min():.6f} mean {cosine.mean():.6f}")
    if device.type == "cuda":
        from encoders.media.gpu_jpeg import GpuJpegPreprocessor

        on_gpu = GpuJpegPreprocessor(device).preprocess_batch(probe)
        diffs = [
            (t.cpu() - preprocess("image", d)[0]).abs().max().item()
            for t, d in zip(on_gpu, probe, strict=True)
            if t is not None
        ]
        report["fast_max_abs_diff_normalised"] = round(max(diffs), 4)
        print(f"nvJPEG vs exact, largest normalised pixel difference: {max(diffs):.4f}")
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(standalone(sys.modules[__name__]))
