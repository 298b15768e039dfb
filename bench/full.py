"""`pandagpt bench run` (plain `pandagpt bench` too): the service against the reference path.

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
from bench.options import (
    add_server_env_argument,
    add_weights_arguments,
    demo_weights,
    reference_delta,
    server_settings,
    weights_root,
)
from bench.report import plot, ratios, render, targets, write_json
from bench.workload import KINDS


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_weights_arguments(p)
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
    add_server_env_argument(p)


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
    settings = server_settings(args)
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
    args: argparse.Namespace, sizes: dict[int, int]
) -> tuple[list[LevelResult], dict[int, list[RequestResult]]]:
    from bench.reference_client import ReferenceClient
    from bench.workload import make_workload
    from reference.path import ReferencePath

    sources = weights_root(args) / "sources"
    ref = ReferenceClient(ReferencePath(sources, reference_delta(args), args.max_tokens))
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


def measure(args: argparse.Namespace) -> dict[str, Any]:
    levels = [int(x) for x in args.concurrency.split(",") if x.strip()]
    sizes = level_sizes(levels, args.min_requests, args.per_client)
    model_dir = demo_weights(args, seed=args.seed)
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
    reference, reference_results = asyncio.run(reference_phase(args, sizes))
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

        report["multiturn"] = asyncio.run(
            multiturn_figure(
                model_dir,
                args.out_dir,
                args.multiturn_conversations,
                args.multiturn_turns,
                settings=server_settings(args),
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


def run(args: argparse.Namespace) -> int:
    """Exit status 0 when every target is met, 1 otherwise."""
    report = measure(args)
    return 0 if all(t["met"] for t in report["targets"].values()) else 1
