"""`pandagpt bench` (also `python -m bench`): the service against the reference PandaGPT path.

Phases, one after the other so they never share the CPU:

1. demo weights (`--size small` by default) in `--weights-dir`;
2. the service: `pandagpt serve` as its own process, warm-up, then each
   concurrency level over HTTP with the `openai` client (streaming), then the
   cached-vs-uncached figure; the server is then stopped;
3. the reference (reference/path.py) on the same requests, one at a time,
   paying the original's media preprocessing (reference/media.py);
4. encoder micro-batching on vs off, in process (lockstep rounds and open loop);
5. media preprocessing per modality (`python -m bench.media`, its own process);
6. multi-turn TTFT with and without prefix caching (bench/multiturn.py: two more
   `pandagpt serve` starts).

The load generator shares the machine with the service: each level reports its
CPU share (the light client by default; the `openai` client once more at the top
concurrency, for comparison).

Every level runs the same seeded chats (`bench.workload`) with fresh media
bytes, so no level is served from the previous one's cache. Greedy, fixed
length (`--max-tokens`): both paths generate the same number of tokens, and
their texts are compared request by request.

Writes `bench.json` and `bench.png` to `--out-dir` and prints the table.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.load import LevelResult, RequestResult, cpu_share, run_level, summarise
from bench.report import load_table, plot, ratios, write_json
from bench.workload import KINDS

# Targets (2-core CPU, small demo preset, one run). Throughput: 6× (an earlier 30× was
# over 3× what vLLM's engine alone reaches here).
TARGET_THROUGHPUT_X = 6.0  # service req/s at the top concurrency / reference req/s
TARGET_CACHE_RATIO = 0.6  # repeated-image p50 / first-time p50
TARGET_BATCHING_X = 2.0  # encoder items/s batching on / off, 16 concurrent


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pandagpt bench", description=__doc__.splitlines()[0])
    p.add_argument("--size", choices=["tiny", "small"], default="small", help="demo preset")
    p.add_argument("--weights-dir", type=Path, default=None, help="default .cache/bench-<size>")
    p.add_argument("--out-dir", type=Path, default=Path("artifacts/bench"))
    p.add_argument("--concurrency", default="1,4,16,32", help="comma-separated levels")
    p.add_argument("--min-requests", type=int, default=16, help="requests per level, at least")
    p.add_argument("--per-client", type=int, default=2, help="requests per level = this × C")
    p.add_argument("--max-tokens", type=int, default=32, help="generated tokens per reply")
    p.add_argument(
        "--warmup", type=int, default=6, help="untimed requests first (service: ≥ top C)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--kinds",
        default=",".join(KINDS),
        help="request kinds in the mix (e.g. text-only: the language side alone)",
    )
    p.add_argument("--cache-requests", type=int, default=16, help="pairs for the cache figure")
    p.add_argument("--cache-max-tokens", type=int, default=1)
    p.add_argument("--batching-rounds", type=int, default=8, help="rounds of 16 images")
    p.add_argument("--skip-micro", action="store_true", help="no cache / batching figures")
    p.add_argument("--open-items", type=int, default=128, help="open-loop batching items")
    p.add_argument("--skip-media", action="store_true", help="no media preprocessing section")
    p.add_argument("--media-size", choices=["full", "tiny"], default="full")
    p.add_argument("--skip-multiturn", action="store_true", help="no prefix-caching section")
    p.add_argument("--multiturn-conversations", type=int, default=4)
    p.add_argument("--multiturn-turns", type=int, default=8)
    p.add_argument(
        "--client", choices=["light", "openai"], default="light", help="load generator's client"
    )
    p.add_argument(
        "--baseline-root",
        type=Path,
        default=None,
        help="also run the load levels against the service from this source tree (e.g. an "
        "export of the previous commit): before/after in one run",
    )
    p.add_argument("--server-log", type=Path, default=None, help="default OUT_DIR/serve.log")
    p.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="PANDAGPT_X=V",
        help="a setting for `pandagpt serve` (repeatable), e.g. PANDAGPT_ENFORCE_EAGER=true",
    )
    return p


def machine() -> dict[str, Any]:
    model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {"nproc": os.cpu_count(), "cpu": model, "python": platform.python_version()}


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def kinds(args: argparse.Namespace) -> list[str]:
    chosen = [k.strip() for k in args.kinds.split(",") if k.strip()]
    unknown = sorted(set(chosen) - set(KINDS))
    if unknown or not chosen:
        raise SystemExit(f"--kinds: unknown {unknown}; choose from {KINDS}")
    return chosen


def level_sizes(levels: Sequence[int], minimum: int, per_client: int) -> dict[int, int]:
    return {c: max(minimum, per_client * c) for c in levels}


async def service_phase(
    args: argparse.Namespace, model_dir: Path, sizes: dict[int, int], root: Path | None = None
) -> tuple[list[LevelResult], dict[int, list[RequestResult]], dict[str, Any] | None]:
    """The load levels against `pandagpt serve`; `root`: a baseline source tree (then only
    the levels: no cache figure, no client comparison)."""
    from bench.cache_and_batching import cache_figure
    from bench.cpu import cores_used, process_tree_cpu
    from bench.server import REPO_ROOT, started_service
    from bench.service_path import ServiceClient
    from bench.workload import make_workload

    baseline = root is not None
    log = args.server_log or args.out_dir / ("serve-baseline.log" if baseline else "serve.log")
    path = "baseline" if baseline else "service"
    levels: list[LevelResult] = []
    per_level: dict[int, list[RequestResult]] = {}
    cache = None
    settings = dict(item.split("=", 1) for item in args.server_env)
    with started_service(model_dir, log, settings, root=root or REPO_ROOT) as service:
        url = service.url
        client = ServiceClient(url, args.max_tokens, light=args.client == "light")
        try:
            await client.start()
            # Warm at the top concurrency: vLLM's first large batches are slower (new shapes).
            top = max(sizes)
            warm = make_workload(
                max(args.warmup, top), args.seed + 1, tag="warmup", kinds=kinds(args)
            )
            await run_level(warm, top, client.one)
            for c, n in sizes.items():
                requests = make_workload(n, args.seed, tag=f"{path}-c{c}", kinds=kinds(args))
                cpu, server_cpu = time.process_time(), process_tree_cpu(service.pid)
                results, wall = await run_level(requests, c, client.one)
                levels.append(summarise(path, c, results, wall))
                levels[-1].client_cpu_share = cpu_share(time.process_time() - cpu, wall)
                levels[-1].server_cores = cores_used(
                    server_cpu, process_tree_cpu(service.pid), wall
                )
                per_level[c] = results
                print(
                    f"  {path:9s} c={c:<3} {levels[-1].requests_per_s:8.2f} req/s, client CPU "
                    f"{levels[-1].client_cpu_share:.1%}, server cores "
                    + ", ".join(f"{k} {v:.2f}" for k, v in levels[-1].server_cores.items()),
                    flush=True,
                )
            if args.client == "light" and not baseline:  # the top level, openai client
                other = ServiceClient(url, args.max_tokens, light=False)
                try:
                    await other.start()
                    n = sizes[top]
                    requests = make_workload(n, args.seed, tag=f"openai-c{top}", kinds=kinds(args))
                    cpu = time.process_time()
                    results, wall = await run_level(requests, top, other.one)
                    openai_level = summarise("service-openai-client", top, results, wall)
                    openai_level.client_cpu_share = cpu_share(time.process_time() - cpu, wall)
                    levels.append(openai_level)
                    print(
                        f"  openai    c={top:<3} {openai_level.requests_per_s:8.2f} req/s, client "
                        f"CPU {openai_level.client_cpu_share:.1%}",
                        flush=True,
                    )
                finally:
                    await other.aclose()
            if not args.skip_micro and not baseline:
                fig = await cache_figure(client, args.cache_requests, args.cache_max_tokens)
                cache = fig.to_dict()
                print(f"  cache     repeated/first p50 {fig.ratio:.2f}", flush=True)
        finally:
            await client.aclose()
    return levels, per_level, cache


async def reference_phase(
    args: argparse.Namespace, root: Path, sizes: dict[int, int]
) -> tuple[list[LevelResult], dict[int, list[RequestResult]]]:
    from bench.reference_client import ReferenceClient
    from bench.workload import make_workload
    from reference.path import ReferencePath

    delta = root / "sources" / f"pandagpt-demo-{args.size}" / "pytorch_model.pt"
    ref = ReferenceClient(ReferencePath(root / "sources", delta, args.max_tokens))
    warm = make_workload(args.warmup, args.seed + 1, tag="warmup", kinds=kinds(args))
    await run_level(warm, 1, ref.one)
    levels: list[LevelResult] = []
    per_level: dict[int, list[RequestResult]] = {}
    for c, n in sizes.items():
        requests = make_workload(n, args.seed, tag=f"ref-c{c}", kinds=kinds(args))
        results, wall = await run_level(requests, c, ref.one)
        levels.append(summarise("reference", c, results, wall))
        per_level[c] = results
        print(f"  reference c={c:<3} {levels[-1].requests_per_s:8.2f} req/s", flush=True)
    return levels, per_level


def compare_texts(
    service: dict[int, list[RequestResult]], reference: dict[int, list[RequestResult]]
) -> dict[str, Any]:
    """Per level: how many replies are the same text (same greedy tokens, decoded)."""
    out: dict[str, Any] = {}
    for c, mine in service.items():
        theirs = reference.get(c, [])
        pairs = list(zip(mine, theirs, strict=False))
        differ = [f"{a.index}:{a.kind}" for a, b in pairs if a.text != b.text]
        out[str(c)] = {"compared": len(pairs), "same": len(pairs) - len(differ), "differ": differ}
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    from service.weights.demo import make_demo_weights

    levels = [int(x) for x in args.concurrency.split(",") if x.strip()]
    sizes = level_sizes(levels, args.min_requests, args.per_client)
    root = args.weights_dir or Path(f".cache/bench-{args.size}")
    model_dir = make_demo_weights(root, seed=args.seed, size=args.size)
    report: dict[str, Any] = {
        "machine": machine(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "load_start": loadavg(),
        "config": {k: str(v) for k, v in vars(args).items() if k != "rest"},
        "requests_per_level": sizes,
    }
    print(f"load average {report['load_start']} on {report['machine']}", flush=True)
    service, service_results, cache = asyncio.run(service_phase(args, model_dir, sizes))
    report["load_after_service"] = loadavg()
    if args.baseline_root is not None:
        baseline, _, _ = asyncio.run(service_phase(args, model_dir, sizes, args.baseline_root))
        report["baseline_root"] = str(args.baseline_root)
        report["baseline"] = [r.to_dict() for r in baseline]
        report["load_after_baseline"] = loadavg()
    reference, reference_results = asyncio.run(reference_phase(args, root, sizes))
    report["load_after_reference"] = loadavg()
    if not args.skip_micro:
        from bench.cache_and_batching import batching_figure

        batching = asyncio.run(
            batching_figure(model_dir, 16, args.batching_rounds, open_items=args.open_items)
        )
        report["batching"] = batching.to_dict()
        print(f"  batching  on/off {batching.ratio:.2f}", flush=True)
        report["cache"] = cache
    if not args.skip_media:
        report["media"] = media_phase(args, model_dir)
    if not args.skip_multiturn:
        from bench.multiturn import multiturn_figure

        settings = dict(item.split("=", 1) for item in args.server_env)
        report["multiturn"] = asyncio.run(
            multiturn_figure(
                model_dir,
                args.out_dir,
                args.multiturn_conversations,
                args.multiturn_turns,
                settings=settings,
            )
        )
    report["load_end"] = loadavg()
    clients = [s for s in service if s.path != "service"]
    service = [s for s in service if s.path == "service"]
    report["client_comparison"] = [r.to_dict() for r in clients]
    report["service"] = [r.to_dict() for r in service]
    report["reference"] = [r.to_dict() for r in reference]
    by_c = {r.concurrency: r for r in reference}
    report["ratios"] = {
        str(s.concurrency): ratios(s, by_c[s.concurrency]) for s in service if s.concurrency in by_c
    }
    report["same_text"] = compare_texts(service_results, reference_results)
    report["targets"] = targets(report, service, reference)
    write_json(args.out_dir / "bench.json", report)
    plot(args.out_dir / "bench.png", service, reference)
    print(render(report, service, reference))
    print(f"\nwrote {args.out_dir / 'bench.json'} and {args.out_dir / 'bench.png'}")
    return report


def media_phase(args: argparse.Namespace, model_dir: Path) -> dict[str, Any]:
    """`python -m bench.media` in its own process (it pins torch to one thread)."""
    import json
    import subprocess
    import sys

    out = args.out_dir / "media.json"
    argv = [sys.executable, "-m", "bench.media", "--size", args.media_size, "--out", str(out)]
    argv += ["--weights", str(model_dir)]
    subprocess.run(argv, check=True)
    media: dict[str, Any] = json.loads(out.read_text())
    return media


def targets(
    report: dict[str, Any], service: Sequence[LevelResult], reference: Sequence[LevelResult]
) -> dict[str, Any]:
    top = max(s.concurrency for s in service)
    ref = {r.concurrency: r for r in reference}[top]
    x = next(s for s in service if s.concurrency == top).requests_per_s / ref.requests_per_s
    out: dict[str, Any] = {
        f"throughput_x_at_{top}": {"value": x, "target": f">= {TARGET_THROUGHPUT_X}",
                                   "met": x >= TARGET_THROUGHPUT_X},
    }  # fmt: skip
    if report.get("cache"):
        r = report["cache"]["ratio"]
        out["cache_ratio"] = {"value": r, "target": f"<= {TARGET_CACHE_RATIO}",
                              "met": r <= TARGET_CACHE_RATIO}  # fmt: skip
    if report.get("batching"):
        b = report["batching"]["ratio"]
        out["batching_x"] = {"value": b, "target": f">= {TARGET_BATCHING_X}",
                             "met": b >= TARGET_BATCHING_X}  # fmt: skip
        f = report["batching"]["forward_ratio"]
        out["batching_forward_x"] = {"value": f, "target": f">= {TARGET_BATCHING_X}",
                                     "met": f >= TARGET_BATCHING_X}  # fmt: skip
    return out


def render(
    report: dict[str, Any], service: Sequence[LevelResult], reference: Sequence[LevelResult]
) -> str:
    lines = ["", load_table(service, reference), ""]
    if report.get("cache"):
        c = report["cache"]
        lines.append(
            f"cache (image chat, {c['max_tokens']} token, sequential): first-time p50 "
            f"{c['first_p50_s'] * 1000:.1f} ms, repeated p50 {c['repeated_p50_s'] * 1000:.1f} ms"
            f" → {c['ratio']:.2f}×"
        )
    if report.get("batching"):
        b = report["batching"]
        lines.append(
            f"encoder batching (16 concurrent images, median of {b['trials']}): bytes in: on "
            f"{b['on_items_per_s']:.1f} items/s, off {b['off_items_per_s']:.1f} → "
            f"{b['ratio']:.2f}×; tensors in: on {b['on_forward_items_per_s']:.1f}, off "
            f"{b['off_forward_items_per_s']:.1f} → {b['forward_ratio']:.2f}×"
        )
        if b.get("open_items"):
            lines.append(
                f"encoder batching, open loop ({b['open_items']} images in flight): bytes in: on "
                f"{b['open_on_items_per_s']:.1f} items/s, off {b['open_off_items_per_s']:.1f} → "
                f"{b['open_ratio']:.2f}×"
            )
    if report.get("baseline"):
        before = {b["concurrency"]: b for b in report["baseline"]}
        lines.append(f"before/after ({report['baseline_root']} → this tree), same run:")
        lines.append(
            "| concurrency | before req/s | after req/s | after/before | before/ref | after/ref |"
        )
        lines.append("|---|---|---|---|---|---|")
        ref = {r.concurrency: r for r in reference}
        for s in service:
            b = before.get(s.concurrency)
            if b is None:
                continue
            r = ref[s.concurrency].requests_per_s if s.concurrency in ref else float("nan")
            lines.append(
                f"| {s.concurrency} | {b['requests_per_s']:.2f} | {s.requests_per_s:.2f} | "
                f"{s.requests_per_s / b['requests_per_s']:.2f}× | "
                f"{b['requests_per_s'] / r:.2f}× | {s.requests_per_s / r:.2f}× |"
            )
    for level in [*report["service"], *report.get("client_comparison", [])]:
        if level.get("client_cpu_share") is not None:
            lines.append(
                f"load generator CPU share, {level['path']} c={level['concurrency']}: "
                f"{level['client_cpu_share']:.1%} of the machine"
            )
        if level.get("server_cores"):
            split = ", ".join(f"{k} {v:.2f}" for k, v in level["server_cores"].items())
            lines.append(f"server cores busy, {level['path']} c={level['concurrency']}: {split}")
    if report.get("media"):
        from bench.media import render as render_media

        lines += ["", "media preprocessing (python -m bench.media):", render_media(report["media"])]
    if report.get("multiturn"):
        from bench.multiturn import render as render_multiturn

        lines += ["", *render_multiturn(report["multiturn"])]
    same = report["same_text"]
    lines.append(
        "same text as the reference: "
        + ", ".join(f"c={c}: {v['same']}/{v['compared']}" for c, v in same.items())
    )
    for name, t in report["targets"].items():
        verdict = "met" if t["met"] else "MISSED"
        lines.append(f"target {name}: {t['value']:.2f} ({t['target']}) {verdict}")
    lines.append(f"load average: start {report['load_start']}, end {report['load_end']}")
    return "\n".join(lines)


def run_bench_cli(args: argparse.Namespace) -> int:
    """Entry point from `pandagpt bench ...` (args.rest) or `python -m bench ...`."""
    rest = getattr(args, "rest", None)
    parsed = build_parser().parse_args(rest if rest is not None else [])
    report = run(parsed)
    return 0 if all(t["met"] for t in report["targets"].values()) else 1
