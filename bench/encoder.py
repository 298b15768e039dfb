"""ImageBind encoder benchmark: vision, audio and video paths against docs/DESIGN.md §6.

GPU (one command, about 1–3 minutes on an H100; random weights at huge size):

    pandagpt bench encoder --dtype bf16 --compile --cuda-graphs --out bench_encoder.json

CPU smoke run (a tiny config, seconds): `pandagpt bench encoder --quick`.

What is timed: `ImageBindModel.pandagpt_features` on device-resident random
inputs (no preprocessing, no host transfer): the median of up to `--iters` runs
(at least 3; fewer once a row has run `--row-budget` seconds) after `--warmup`
runs, with device synchronisation. Graph and compile rows that would start
after `--time-budget` seconds are skipped, so the whole run stays under ~4 min.
Modes: `eager` (SDPA), `graph` (CUDA-graph replay of the eager forward, small
batches), `compile` (`torch.compile`, default mode). Items: vision = images, audio = audio items
of 3 two-second clips, video = videos of 15 clips (5 times × 3 crops).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from bench.cli import standalone
from encoders.imagebind.config import ImageBindConfig
from encoders.imagebind.model import ImageBindModel

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}

# docs/DESIGN.md §6 (one H100 80GB, fp16, random weights), as seconds per batch.
# Keys: (path, batch, mode). "eager" rows are the reference code; "graph" is the
# reference's SDPA + bf16 + CUDA-graph experiment; "compile" its torch.compile run.
REFERENCE_S: dict[tuple[str, int, str], float] = {
    ("vision", 1, "eager"): 10.1e-3,  # best of two runs (23.0 / 10.1 ms)
    ("vision", 8, "eager"): 8 / 345,
    ("vision", 32, "eager"): 32 / 1064,
    ("vision", 64, "eager"): 64 / 1106,
    ("audio", 1, "eager"): 11.5e-3,
    ("audio", 32, "eager"): 32 / 2198,  # "clips/s" read as items/s (see footer)
    ("video", 1, "eager"): 23.8e-3,
    ("vision", 1, "graph"): 2.4e-3,
    ("vision", 8, "graph"): 7.2e-3,
    ("vision", 64, "compile"): 64 / 1333,
}
# Issue targets on H100 fp16/bf16: vision batch 1 ≤ 5 ms (any mode), batch 64 ≥ 1700 img/s.
TARGETS: dict[tuple[str, int], tuple[str, float]] = {
    ("vision", 1): ("latency_ms<=", 5.0),
    ("vision", 64): ("items_per_s>=", 1700.0),
}
UNITS = {"vision": "img/s", "audio": "items/s", "video": "videos/s"}


@dataclass
class Row:
    path: str
    batch: int
    mode: str
    latency_ms: float | None = None
    items_per_s: float | None = None
    ref_latency_ms: float | None = None
    speedup_vs_ref: float | None = None
    target: str | None = None
    target_met: bool | None = None
    error: str | None = None


def small_config(quick: bool) -> ImageBindConfig:
    """CPU sizes: real geometry, narrow and shallow towers."""
    d, blocks = (32, 1) if quick else (128, 4)
    depths = {"vision": blocks, "audio": blocks, "text": 1, "depth": 1, "thermal": 1, "imu": 1}
    towers: dict[str, int] = {}
    for tower, depth in depths.items():
        towers |= {f"{tower}_embed_dim": d, f"{tower}_num_blocks": depth}
        towers[f"{tower}_num_heads"] = 4
    return ImageBindConfig(out_embed_dim=d, **towers)


def build_model(
    config: ImageBindConfig, device: torch.device, dtype: torch.dtype
) -> ImageBindModel:
    """Random weights made directly on the device (no 4.8 GB host init)."""
    with torch.device("meta"):
        model = ImageBindModel(config)
    model.to_empty(device=device)
    model.init_weights()
    model.requires_grad_(False)
    return model.to(dtype).eval()


def make_input(path: str, batch: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    shape = {
        "vision": (batch, 3, 224, 224),
        "audio": (batch, 3, 1, 128, 204),
        "video": (batch, 15, 3, 2, 224, 224),
    }[path]
    return torch.randn(shape, device=device, dtype=dtype)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_fn(
    fn: Callable[[], object], device: torch.device, warmup: int, iters: int, row_budget_s: float
) -> float:
    """Median seconds per call; fewer iterations (at least 3) for slow calls."""
    for _ in range(warmup):
        fn()
    sync(device)
    times: list[float] = []
    while len(times) < iters and (len(times) < 3 or sum(times) < row_budget_s):
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def cuda_graph(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> Callable[[], object]:
    """Capture `fn(x)` once; the returned callable replays it on the same input buffer."""
    static_x = x.clone()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):  # warm up allocator and kernels outside the capture
            fn(static_x)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn(static_x)
    return graph.replay


def feature_fn(model: ImageBindModel, path: str) -> Callable[[torch.Tensor], torch.Tensor]:
    tower = "audio" if path == "audio" else "vision"

    def run(x: torch.Tensor) -> torch.Tensor:
        return model.pandagpt_features({tower: x})[tower]

    return run


def measure(
    model: ImageBindModel,
    path: str,
    batch: int,
    mode: str,
    args: argparse.Namespace,
    compiled: dict[str, Callable[[torch.Tensor], torch.Tensor]],
) -> Row:
    row = Row(path, batch, mode)
    device, dtype = args.device, DTYPES[args.dtype]
    try:
        with torch.inference_mode():
            x = make_input(path, batch, device, dtype)
            fn = feature_fn(model, path)
            if mode == "compile":
                if path not in compiled:
                    compiled[path] = torch.compile(fn, dynamic=False)
                fn = compiled[path]
            if mode == "graph":
                call = cuda_graph(fn, x)
            else:

                def call() -> object:
                    return fn(x)

            seconds = time_fn(call, device, args.warmup, args.iters, args.row_budget)
    except Exception as exc:  # one failing mode must not lose the rest of the table
        row.error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
        return row
    finally:
        if device.type == "cuda":
            torch.cuda.empty_cache()
    row.latency_ms = seconds * 1e3
    row.items_per_s = batch / seconds
    ref = REFERENCE_S.get((path, batch, mode)) or REFERENCE_S.get((path, batch, "eager"))
    if ref is not None:
        row.ref_latency_ms = ref * 1e3
        row.speedup_vs_ref = ref / seconds
    target = TARGETS.get((path, batch))
    if target is not None and args.device.type == "cuda" and args.dtype != "fp32":
        kind, value = target
        row.target = f"{kind}{value:g}"
        got = row.latency_ms if kind.startswith("latency") else row.items_per_s
        row.target_met = got <= value if kind.endswith("<=") else got >= value
    return row


def print_table(rows: list[Row]) -> None:
    header = (
        f"{'path':<7}{'batch':>6}  {'mode':<8}{'latency ms':>11}{'throughput':>12} {'unit':<9}"
        f"{'ref ms':>9}{'speedup':>9}  target"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        if r.error:
            print(f"{r.path:<7}{r.batch:>6}  {r.mode:<8}  ERROR {r.error}")
            continue
        ref = f"{r.ref_latency_ms:9.2f}" if r.ref_latency_ms is not None else f"{'-':>9}"
        speed = f"{r.speedup_vs_ref:8.2f}x" if r.speedup_vs_ref is not None else f"{'-':>9}"
        target = ""
        if r.target:
            target = f"{r.target} {'PASS' if r.target_met else 'FAIL'}"
        print(
            f"{r.path:<7}{r.batch:>6}  {r.mode:<8}{r.latency_ms:11.2f}{r.items_per_s:12.1f} "
            f"{UNITS[r.path]:<9}{ref}{speed}  {target}"
        )
    for (path, batch), (kind, value) in TARGETS.items():
        timed = [r for r in rows if (r.path, r.batch) == (path, batch) and r.target_met is not None]
        if timed:
            key = (
                (lambda r: r.latency_ms)
                if kind.startswith("latency")
                else (lambda r: -r.items_per_s)
            )
            best = min(timed, key=key)
            print(
                f"target {path} batch {batch} {kind}{value:g}: best {best.latency_ms:.2f} ms, "
                f"{best.items_per_s:.0f} {UNITS[path]} ({best.mode}) "
                f"{'PASS' if best.target_met else 'FAIL'}"
            )
    print(
        "speedup = reference seconds per batch / ours (>1 is faster); graph/compile rows "
        "compare with the reference's own graph/compile figures where docs/DESIGN.md §6 has one, "
        "else with its eager figure. Audio: if the reference's '2198 clips/s' counted "
        "2-s clips (3 per item), divide the audio batch-32 speedup by 3."
    )


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda if available)")
    p.add_argument("--dtype", choices=sorted(DTYPES), default=None, help="default bf16 on GPU")
    p.add_argument("--quick", action="store_true", help="tiny config, few iterations (CPU smoke)")
    p.add_argument("--paths", default="vision,audio,video")
    p.add_argument("--batches", default=None, help="vision/audio batches (GPU: 1,8,32,64)")
    p.add_argument("--video-batches", default=None, help="15-clip videos (GPU: 1,8,32,64)")
    p.add_argument("--row-budget", type=float, default=1.5, help="timed seconds per row")
    p.add_argument("--warmup", type=int, default=None)
    p.add_argument("--iters", type=int, default=None)
    p.add_argument("--compile", action="store_true", help="also time torch.compile")
    p.add_argument("--compile-batches", default="64,1", help="vision batches for --compile")
    p.add_argument("--cuda-graphs", action="store_true", help="also time CUDA-graph replay")
    p.add_argument("--graph-batches", default="1,8", help="batches for --cuda-graphs")
    p.add_argument("--huge", action="store_true", help="huge sizes even on CPU")
    p.add_argument("--attn", default="sdpa", help="attention kernel (registry key)")
    p.add_argument(
        "--time-budget",
        type=float,
        default=150.0,
        help="skip graph/compile rows after this many seconds",
    )
    p.add_argument("--out", type=Path, default=None, help="write results as JSON")


def resolve_defaults(args: argparse.Namespace) -> argparse.Namespace:
    """The defaults that depend on the device and on --quick."""
    args.device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    on_gpu = args.device.type == "cuda"
    args.dtype = args.dtype or ("bf16" if on_gpu else "fp32")
    if args.quick:
        args.batches, args.video_batches = "1,2", "1"
        args.compile_batches, args.graph_batches = "1", "1"
    args.batches = args.batches or ("1,8,32,64" if on_gpu else "1,8,32")
    args.video_batches = args.video_batches or ("1,8,32,64" if on_gpu else "1,4")
    args.warmup = args.warmup if args.warmup is not None else (1 if args.quick else 3)
    args.iters = args.iters if args.iters is not None else (2 if args.quick else 10)
    return args


def ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v]


def run(args: argparse.Namespace) -> int:
    args = resolve_defaults(args)
    started = time.perf_counter()
    on_gpu = args.device.type == "cuda"
    if on_gpu or args.huge:
        config = ImageBindConfig.huge(attn_implementation=args.attn)
    else:
        config = small_config(args.quick)
        config.attn_implementation = args.attn
    if on_gpu:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    model = build_model(config, args.device, DTYPES[args.dtype])
    device_name = torch.cuda.get_device_name(args.device) if on_gpu else platform.processor()
    print(
        f"ImageBind encoder bench: {device_name or 'cpu'}, {args.dtype}, "
        f"vision {config.vision_embed_dim}x{config.vision_num_blocks}, torch {torch.__version__}, "
        f"build {time.perf_counter() - started:.1f}s"
    )

    plan: list[tuple[str, int, str]] = []
    paths = args.paths.split(",")
    for path in paths:
        for batch in ints(args.video_batches if path == "video" else args.batches):
            plan.append((path, batch, "eager"))
    if args.cuda_graphs and on_gpu:
        for path in paths:  # one video is already 15 images: graph batch 1 only
            batches = [1] if path == "video" else ints(args.graph_batches)
            plan += [(path, b, "graph") for b in batches]
    if args.compile:
        plan += [("vision", b, "compile") for b in ints(args.compile_batches)]

    rows: list[Row] = []
    compiled: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {}
    for path, batch, mode in plan:
        elapsed = time.perf_counter() - started
        if mode != "eager" and elapsed > args.time_budget:
            rows.append(Row(path, batch, mode, error=f"skipped: time budget ({elapsed:.0f}s)"))
            continue
        t0 = time.perf_counter()
        rows.append(measure(model, path, batch, mode, args, compiled))
        print(f"  {path} b{batch} {mode}: {time.perf_counter() - t0:.1f}s", file=sys.stderr)
    print_table(rows)
    if not on_gpu:
        print("note: the reference figures are H100 fp16 at huge size; CPU ratios only smoke-test.")
    total = time.perf_counter() - started
    print(f"total {total:.1f}s")
    if args.out:
        report = {
            "device": device_name,
            "dtype": args.dtype,
            "torch": torch.__version__,
            "config": config.to_dict(),
            "peak_memory_gb": torch.cuda.max_memory_allocated(args.device) / 2**30
            if on_gpu
            else None,
            "total_seconds": total,
            "rows": [asdict(r) for r in rows],
        }
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 1 if any(r.error and not r.error.startswith("skipped") for r in rows) else 0


if __name__ == "__main__":
    raise SystemExit(standalone(sys.modules[__name__]))
