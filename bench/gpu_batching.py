"""Encoder micro-batching on vs off on a GPU: ImageBind-huge behind the worker's `Encoder`.

The CPU figure in `pandagpt bench` cannot show what micro-batching is for: on
two cores the small vision tower is compute-bound at batch 1 already. On a GPU
a batch-1 forward is launch-bound, which is the case the batcher exists for.
This runs the same comparison (bench/batching.py) there, with random weights at
the official size, without vLLM:

    pandagpt bench gpu batching --out bench_batching_gpu.json

`--device cpu --quick` is a seconds-long smoke run on a tiny config.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

import torch

from bench.batching import compare
from bench.cli import standalone
from bench.encoder import DTYPES, build_model, small_config
from bench.workload import fixture, unique_images
from encoders.imagebind.config import ImageBindConfig
from encoders.media import preprocess
from encoders.micro_batcher import Encoder


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="bf16")
    parser.add_argument("--quick", action="store_true", help="tiny config (smoke run)")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--trials", type=int, default=3)
    # The worker's defaults (service/config/); a GPU host has more cores for decoding.
    parser.add_argument("--max-wait-ms", type=float, default=5.0)
    parser.add_argument("--preprocess-workers", type=int, default=8)
    parser.add_argument("--preprocess-processes", type=int, default=0, help="0: decode in threads")
    parser.add_argument(
        "--intra-op-threads", type=int, default=0, help="torch.set_num_threads (0: torch's default)"
    )
    parser.add_argument("--out", type=Path)


def run(args: argparse.Namespace) -> int:
    device = torch.device(args.device)
    dtype = DTYPES[args.dtype]
    if args.intra_op_threads:
        torch.set_num_threads(args.intra_op_threads)
    config = small_config(quick=True) if args.quick else ImageBindConfig.huge()
    model = build_model(config, device, dtype)

    def make_encoder(max_batch_size: int) -> Encoder:
        return Encoder(
            model,
            device=device,
            dtype=dtype,
            max_batch_size=max_batch_size,
            max_wait_ms=args.max_wait_ms,
            preprocess_workers=args.preprocess_workers,
        )

    per_trial = args.concurrency * (args.rounds + 1)
    fresh = iter(unique_images(per_trial * args.trials * 2, start=30_000))
    figure = asyncio.run(
        compare(
            make_encoder,
            fresh,
            preprocess("image", fixture("dog_image.jpg")),
            args.concurrency,
            args.rounds,
            args.trials,
        )
    )
    decoding = f"{args.preprocess_workers} decoding threads"
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    report = {
        "device": name,
        "dtype": args.dtype,
        "config": "tiny" if args.quick else "huge",
        "torch": torch.__version__,
        "preprocess_workers": args.preprocess_workers,
        "max_wait_ms": args.max_wait_ms,
        "intra_op_threads": torch.get_num_threads(),
        **figure.to_dict(),
    }
    print(
        f"{name} {args.dtype}, {args.concurrency} concurrent images, medians of {args.trials},"
        f" {decoding}, intra-op {torch.get_num_threads()}:\n"
        f"  bytes in : on {figure.on_items_per_s:.1f} / off {figure.off_items_per_s:.1f}"
        f" items/s = {figure.ratio:.2f}x\n"
        f"  tensors  : on {figure.on_forward_items_per_s:.1f} /"
        f" off {figure.off_forward_items_per_s:.1f} items/s = {figure.forward_ratio:.2f}x\n"
        f"  batch sizes (on, bytes in): {figure.on_batch_sizes}"
    )
    if args.out:
        args.out.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(standalone(sys.modules[__name__]))
