"""`python -m bench.media`: media preprocessing per modality, ours against the original's.

For each item, side by side in one run (paths interleaved, so load drifts on a
shared machine hit all alike): CPU ms per item and items/s per core of

- `exact`: `encoders.media.preprocess` (the service's default);
- `fast`: the same with `PANDAGPT_MEDIA_FIDELITY=fast` (still images only);
- `upstream`: the original's way (reference/media.py: every video frame
  decoded, FFmpeg's default probing, Pillow decode + bicubic);
- `decode`: the floor the issue's targets are stated against: video, decoding
  every frame (no conversion); audio, default-probe open + decode; image,
  Pillow decode + RGB + bicubic resize.

Each output is compared with `exact` (max |diff|, 0 where bit-identical); fast
mode also gets its largest difference in 8-bit levels and the cosine of the
ImageBind vision embeddings (the weights given by `--weights`, else the tiny
test model: random weights, as no released weights are downloaded here).
CPU time is the process's (decoder threads included) with torch on one
intra-op thread, so ms per item is per core. Items: the fixtures plus media
made here like the issue's (720p 10 s H.264 with B-frames, a 12 MP JPEG, a
10 s stereo 44.1 kHz WAV); `--size tiny` makes small ones (the smoke test).
`--malloc` repeats a few items under glibc malloc settings, in subprocesses.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np
import torch
from PIL import Image

from bench.workload import MEDIA_DIR
from encoders.media import MediaLimits, preprocess
from harness.media import write_video
from reference.media import preprocess_upstream

FAST = MediaLimits(fidelity="fast")
# Issue targets (2-core machine, same run): ours / decode baseline, and fast speed-up.
TARGETS = {"video": ("<=", 0.5), "audio": ("<=", 0.35), "image": ("<=", 1.05)}
TARGET_FAST_X = 4.0


@dataclass
class Row:
    item: str
    modality: str
    path: str
    ms: float  # median CPU ms per item
    items_per_s_per_core: float
    max_abs_diff: float | None = None  # against exact
    page_faults: float = 0.0  # median minor faults per item
    extra: dict[str, float] = field(default_factory=dict)


# --- media made here (nothing downloaded) ---


def _scene(width: int, height: int, count: int) -> list[np.ndarray]:
    """A fixture photo panned across the frame, with sensor-like noise."""
    base = Image.open(MEDIA_DIR / "dog_image.jpg").convert("RGB")
    big = np.asarray(base.resize((width * 2, height * 2), Image.Resampling.BICUBIC))
    rng = np.random.default_rng(0)
    frames = []
    for i in range(count):
        x, y = int(i * width / count), int(i * height / count / 2)
        frame = big[y : y + height, x : x + width].astype(np.int16)
        frames.append(np.clip(frame + rng.integers(-6, 7, frame.shape), 0, 255).astype(np.uint8))
    return frames


def make_video(width: int, height: int, seconds: float, fps: int = 30) -> bytes:
    """H.264 with B-frames (x264 "fast" preset, 3 B-frames, its default GOP)."""
    scene = _scene(width, height, int(fps * seconds))
    return write_video(scene, rate=fps, options={"preset": "fast", "bf": "3"})


def make_photo(width: int, height: int) -> bytes:
    """A fixture upscaled with noise, saved as a quality-90 JPEG."""
    base = Image.open(MEDIA_DIR / "bird_image.jpg").convert("RGB")
    pixels = np.asarray(base.resize((width, height), Image.Resampling.BICUBIC)).astype(np.int16)
    pixels = pixels + np.random.default_rng(1).integers(-8, 9, pixels.shape)
    out = io.BytesIO()
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(out, "JPEG", quality=90)
    return out.getvalue()


def make_wav(seconds: float, rate: int = 44100) -> bytes:
    """Stereo 16-bit PCM: two tones and noise."""
    t = np.arange(int(seconds * rate)) / rate
    x = np.stack([0.3 * np.sin(2 * np.pi * 440 * t), 0.3 * np.sin(2 * np.pi * 660 * t + 1)])
    x = x + np.random.default_rng(2).normal(0, 0.05, x.shape)
    pcm = np.clip(np.round(x * 32767), -32768, 32767).astype("<i2")
    body = np.ascontiguousarray(pcm.T).tobytes()
    head = b"RIFF" + (36 + len(body)).to_bytes(4, "little") + b"WAVEfmt "
    head += (16).to_bytes(4, "little") + np.array([1, 2], "<u2").tobytes()
    head += np.array([rate, rate * 4], "<u4").tobytes() + np.array([4, 16], "<u2").tobytes()
    return head + b"data" + len(body).to_bytes(4, "little") + body


def items(size: str) -> list[tuple[str, str, bytes]]:
    """(name, modality, bytes): generated media like the issue's, plus the fixtures."""
    if size == "tiny":
        return [
            ("h264-160p-1s", "video", make_video(160, 96, 1.0, 15)),
            ("jpeg-1mp", "image", make_photo(1200, 900)),
            ("wav-stereo-1s", "audio", make_wav(1.0)),
            ("bird_image.jpg", "image", (MEDIA_DIR / "bird_image.jpg").read_bytes()),
        ]
    fixtures = [(n, "image") for n in ("bird_image.jpg", "dog_image.jpg", "car_image.jpg")]
    fixtures += [("bird_audio.wav", "audio"), ("a.mp4", "video")]
    return [
        ("h264-720p-10s-bframes", "video", make_video(1280, 720, 10.0)),
        ("jpeg-12mp", "image", make_photo(4000, 3000)),
        ("wav-stereo-44k-10s", "audio", make_wav(10.0)),
        *((n, m, (MEDIA_DIR / n).read_bytes()) for n, m in fixtures),
    ]


# --- the decode-only baselines ---


def decode_floor(modality: str, data: bytes) -> object:
    """What the issue's targets divide by (see the module docstring)."""
    with io.BytesIO(data) as source:
        if modality == "video":
            with av.open(source) as container:
                for _ in container.decode(container.streams.video[0]):
                    pass
        elif modality == "audio":
            with av.open(source) as container:
                for frame in container.decode(container.streams.audio[0]):
                    frame.to_ndarray()
        else:
            image = Image.open(source).convert("RGB")
            width, height = image.size
            short = 224 / min(width, height)
            image.resize((int(width * short), int(height * short)), Image.Resampling.BICUBIC)
    return None


def paths_for(modality: str) -> dict[str, Callable[[bytes], Any]]:
    paths: dict[str, Callable[[bytes], Any]] = {
        "exact": lambda d: preprocess(modality, d),
        "upstream": lambda d: preprocess_upstream(modality, d),
        "decode": lambda d: decode_floor(modality, d),
    }
    if modality == "image":
        paths["fast"] = lambda d: preprocess(modality, d, FAST)
    return paths


def measure(name: str, modality: str, data: bytes, repeat: int) -> list[Row]:
    paths = paths_for(modality)
    outputs = {path: fn(data) for path, fn in paths.items()}  # warm-up, and the outputs
    cpu: dict[str, list[float]] = {path: [] for path in paths}
    faults: dict[str, list[int]] = {path: [] for path in paths}
    for _ in range(repeat):
        for path, fn in paths.items():
            before, start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.process_time()
            fn(data)
            cpu[path].append(time.process_time() - start)
            faults[path].append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    rows = []
    for path in paths:
        ms = statistics.median(cpu[path]) * 1000
        out = outputs[path]
        diff = None
        if isinstance(out, torch.Tensor):
            diff = float((out - outputs["exact"]).abs().max())
        rows.append(
            Row(name, modality, path, ms, 1000 / ms, diff, float(statistics.median(faults[path])))
        )
    return rows


def fast_closeness(data: bytes, model: Any) -> dict[str, float]:
    """Fast against exact: largest difference in 8-bit levels, embedding cosine."""
    exact, fast = preprocess("image", data), preprocess("image", data, FAST)
    std = torch.tensor((0.26862954, 0.26130258, 0.27577711)).view(1, 3, 1, 1)
    levels = float(((exact - fast) * std * 255).abs().max())
    with torch.inference_mode():
        embeds = model.pandagpt_features({"vision": torch.cat([exact, fast])})["vision"]
    cosine = float(torch.nn.functional.cosine_similarity(embeds[0], embeds[1], dim=0))
    return {"max_levels": levels, "cosine": cosine}


def load_model(weights: Path | None) -> tuple[Any, str]:
    from encoders.imagebind.checkpoint import load_imagebind
    from encoders.imagebind.config import ImageBindConfig
    from encoders.imagebind.model import ImageBindModel

    if weights is not None:
        return load_imagebind(weights / "imagebind.safetensors", None, "cpu", torch.float32), str(
            weights
        )
    fixtures = MEDIA_DIR.parent / "imagebind"
    from safetensors.torch import load_file

    args = json.loads((fixtures / "tiny_config.json").read_text())["constructor_args"]
    model = ImageBindModel(ImageBindConfig(**args)).eval()
    model.load_state_dict(load_file(fixtures / "tiny_weights.safetensors"))
    return model, "tiny test model (random weights)"


def summary(rows: list[Row]) -> dict[str, Any]:
    """Per item: ours / decode floor (and fast speed-up), with the issue's target."""
    out: dict[str, Any] = {}
    by = {(r.item, r.path): r for r in rows}
    for item, modality in dict.fromkeys((r.item, r.modality) for r in rows):
        exact, floor, upstream = by[(item, "exact")], by[(item, "decode")], by[(item, "upstream")]
        entry: dict[str, Any] = {
            "exact_over_decode": exact.ms / floor.ms,
            "upstream_over_exact": upstream.ms / exact.ms,
        }
        op, target = TARGETS[modality]
        entry["target"] = f"exact/decode {op} {target}"
        entry["met"] = exact.ms / floor.ms <= target
        if (item, "fast") in by:
            entry["fast_x"] = exact.ms / by[(item, "fast")].ms
        out[item] = entry
    return out


def render(report: dict[str, Any]) -> str:
    lines = [
        "| item | path | CPU ms/item | items/s per core | max abs diff vs exact | page faults |",
        "|---|---|---|---|---|---|",
    ]
    for r in report["rows"]:
        diff = "–" if r["max_abs_diff"] is None else f"{r['max_abs_diff']:.3g}"
        lines.append(
            f"| {r['item']} | {r['path']} | {r['ms']:.1f} | {r['items_per_s_per_core']:.1f} | "
            f"{diff} | {r['page_faults']:.0f} |"
        )
    lines.append("")
    for item, s in report["summary"].items():
        text = f"{item}: exact/decode {s['exact_over_decode']:.2f} ({s['target']}: "
        text += "met" if s["met"] else "MISSED"
        text += f"), upstream/exact {s['upstream_over_exact']:.2f}"
        if "fast_x" in s:
            text += f", fast {s['fast_x']:.2f}× exact"
        lines.append(text)
    for item, c in report.get("fast_closeness", {}).items():
        lines.append(
            f"fast vs exact, {item}: max {c['max_levels']:.0f} levels, cosine {c['cosine']:.7f} "
            f"(1 − cos = {1 - c['cosine']:.1e})"
        )
    for line in report.get("malloc", []):
        lines.append(line)
    lines.append(f"load average: start {report['load_start']}, end {report['load_end']}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> dict[str, Any]:
    torch.set_num_threads(1)  # per core; decoders keep their own threads (counted in CPU time)
    report: dict[str, Any] = {
        "load_start": [round(x, 2) for x in os.getloadavg()],
        "nproc": os.cpu_count(),
        "size": args.size,
    }
    media = items(args.size)
    rows: list[Row] = []
    for name, modality, data in media:
        rows.extend(measure(name, modality, data, args.repeat))
        print(f"  {name}: {len(data)} bytes measured", flush=True)
    model, model_name = load_model(args.weights)
    report["cosine_model"] = model_name
    report["fast_closeness"] = {
        name: fast_closeness(data, model) for name, modality, data in media if modality == "image"
    }
    if args.malloc:
        report["malloc"] = malloc_compare(args)
    report["rows"] = [asdict(r) for r in rows]
    report["summary"] = summary(rows)
    report["load_end"] = [round(x, 2) for x in os.getloadavg()]
    return report


MALLOC = {  # mallopt: -3 M_MMAP_THRESHOLD, -1 M_TRIM_THRESHOLD, -8 M_ARENA_MAX
    "glibc default": [],
    "mmap threshold 1 MiB, 2 arenas": [(-3, 1 << 20), (-8, 2)],
    "mmap 256 MiB, trim 512 MiB": [(-3, 256 << 20), (-1, 512 << 20)],
}


def malloc_compare(args: argparse.Namespace) -> list[str]:
    """The exact path under each malloc setting, each in a fresh process."""
    lines = []
    for label, options in MALLOC.items():
        argv = [sys.executable, "-m", "bench.media", "--size", args.size, "--malloc-child"]
        argv += ["--repeat", str(args.repeat), "--mallopt", json.dumps(options)]
        done = subprocess.run(argv, capture_output=True, text=True, check=True)
        lines.append(f"malloc {label}: {done.stdout.strip().splitlines()[-1]}")
    return lines


def malloc_child(args: argparse.Namespace) -> None:
    import ctypes

    libc = ctypes.CDLL("libc.so.6")
    for param, value in json.loads(args.mallopt):
        libc.mallopt(param, value)
    torch.set_num_threads(1)
    parts = []
    for name, modality, data in items(args.size)[:3]:
        rows = measure(name, modality, data, args.repeat)
        exact = next(r for r in rows if r.path == "exact")
        parts.append(f"{name} {exact.ms:.1f} ms, {exact.page_faults:.0f} faults")
    print("; ".join(parts))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.media", description=__doc__.splitlines()[0])
    p.add_argument("--size", choices=["full", "tiny"], default="full")
    p.add_argument("--repeat", type=int, default=5, help="timed runs per path and item")
    p.add_argument("--weights", type=Path, default=None, help="model dir for the cosine")
    p.add_argument("--out", type=Path, default=Path("artifacts/bench/media.json"))
    p.add_argument("--malloc", action="store_true", help="also compare malloc settings")
    p.add_argument("--malloc-child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--mallopt", default="[]", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.malloc_child:
        malloc_child(args)
        return 0
    report = run(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(render(report))
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
