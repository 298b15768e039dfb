"""`pandagpt bench peer`: the service against what a team would run instead, side by side.

- text: `pandagpt serve` against vLLM's own OpenAI server (PandaGPT's prompt from a
  chat template), driven by vLLM's benchmark client (random text, ignore_eos);
- mixed: `pandagpt serve` against the assembled peer (vLLM's server with prompt
  embeddings behind a small front, bench/peer/front.py), driven by vLLM's client
  (random images) and by `pandagpt bench`'s own workload (image, audio, video,
  image+audio, multi-turn and text-only chats over the fixture media, every item
  new bytes so that no cache hits).

Each pair starts the service, measures, stops it, then starts the peer and measures
the same load: alternating pairs on the same machine, reported as medians and the
spread (min–max) across pairs. The first pair also checks that both sides give the
same greedy replies. A request-rate sweep (Poisson arrivals) runs once per side on
the text workload and is plotted. Timings are this run's output, not test conditions.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import platform
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench.cpu import CpuTimeline, process_tree_cpu
from bench.load import run_level
from bench.options import add_weights_arguments, demo_weights
from bench.peer.client import ClientRun, client_argv, run_client
from bench.peer.servers import SERVICE_ENGINE, Peer, assembled_peer, served_name, vllm_server
from bench.server import started_service
from bench.service_path import ServiceClient
from bench.workload import make_workload

SIDES = ("service", "peer")
# Figures taken from each client run, as vLLM's client names them.
FIGURES = [
    "output_throughput",
    "request_throughput",
    "request_goodput",
    "p50_ttft_ms",
    "p99_ttft_ms",
    "p50_tpot_ms",
    "p99_tpot_ms",
    "p50_itl_ms",
    "p99_itl_ms",
    "p50_e2el_ms",
    "p99_e2el_ms",
]
SAME_REPLY_PROMPTS = [
    "Tell me a story about a cat.",
    "What is the capital of France?",
    "Describe a sunset over the sea in three sentences.",
]


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_weights_arguments(p)
    p.set_defaults(size="tiny")
    p.add_argument("--pairs", type=int, default=3, help="alternating runs per side")
    p.add_argument("--workloads", default="text,mixed", help="text, mixed, or both")
    p.add_argument("--num-prompts", type=int, default=256, help="requests per text run")
    p.add_argument("--mixed-prompts", type=int, default=96, help="requests per mixed run")
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--input-len", type=int, default=48)
    p.add_argument("--output-len", type=int, default=64)
    p.add_argument(
        "--goodput",
        nargs="*",
        default=["ttft:1000", "tpot:100"],
        help="SLOs as vLLM's client takes them (ms)",
    )
    p.add_argument(
        "--sweep-rates",
        default="4,8,12,16,24",
        help="requests/s of the Poisson sweep on the text workload (empty: no sweep)",
    )
    p.add_argument("--sweep-prompts", type=int, default=128)
    p.add_argument("--out-dir", type=Path, default=Path("bench/results/peer"))
    p.add_argument(
        "--baseline-root",
        type=Path,
        default=None,
        help="instead of a peer, the service from this source tree (before/after a change)",
    )


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


@contextlib.contextmanager
def side_server(
    side: str, workload: str, model_dir: Path, log_dir: Path, baseline_root: Path | None = None
) -> Iterator[Peer]:
    """One side's server for a workload; the service runs the peer's engine settings.
    With `baseline_root`, the peer side is the service again, from that source tree."""
    if side == "service" or baseline_root is not None:
        root = {"root": baseline_root} if side == "peer" and baseline_root else {}
        log = log_dir / f"{'baseline' if root else 'service'}.log"
        with started_service(model_dir, log, SERVICE_ENGINE, **root) as service:
            yield Peer(service.url, served_name(model_dir), (service.pid,))
    elif workload == "text":
        with vllm_server(model_dir, log_dir) as peer:
            yield peer
    else:
        with assembled_peer(model_dir, log_dir) as peer:
            yield peer


def server_cpu_s(pids: Sequence[int]) -> float:
    return sum(sum(process_tree_cpu(pid).values()) for pid in pids)


def greedy_replies(url: str, model: str, chats: list[list[dict[str, Any]]]) -> list[str]:
    """Each chat once, greedy, 24 tokens, not streamed."""
    replies = []
    for messages in chats:
        body = {
            "model": model,
            "messages": messages,
            "max_tokens": 24,
            "temperature": 0.0,
            "ignore_eos": True,
        }
        response = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=120)
        response.raise_for_status()
        replies.append(response.json()["choices"][0]["message"]["content"])
    return replies


def same_reply(service: str, peer: str) -> bool:
    """The same tokens. vLLM's server decodes a text prompt's first reply token after the
    prompt's own, so the word-start space it carries shows; from prompt embeddings (the
    service, the assembled peer) there is no prompt text and the reply starts bare."""
    return service == peer or (peer.startswith(" ") and service == peer[1:])


def reply_chats(workload: str) -> list[list[dict[str, Any]]]:
    if workload == "text":
        return [[{"role": "user", "content": prompt}] for prompt in SAME_REPLY_PROMPTS]
    kinds = ["image", "audio", "video", "multi-turn"]
    return [r.messages() for r in make_workload(len(kinds), seed=7, tag="same", kinds=kinds)]


class Measure:
    """The runs of one side's server: vLLM's client, `pandagpt bench`'s workload."""

    def __init__(self, args: argparse.Namespace, model_dir: Path, run_dir: Path) -> None:
        self.args = args
        self.tokenizer = str(model_dir / "llm")
        self.run_dir = run_dir

    def client(
        self, peer: Peer, workload: str, name: str, *, num_prompts: int, rate: float = float("inf")
    ) -> dict[str, Any]:
        result = self.run_dir / f"{name}.json"
        argv = client_argv(
            peer.url,
            peer.model,
            self.tokenizer,
            workload,
            num_prompts=num_prompts,
            max_concurrency=self.args.concurrency if rate == float("inf") else None,
            request_rate=rate,
            input_len=self.args.input_len if workload == "text" else 16,
            output_len=self.args.output_len,
            goodput=self.args.goodput,
            result=result,
        )
        with CpuTimeline(peer.pids) as server_cpu:
            run: ClientRun = run_client(argv, result, self.run_dir / "client.log")
        figures = {key: run.result.get(key) for key in FIGURES}
        duration = run.result["duration"]
        figures.update(
            completed=run.result["completed"],
            failed=run.result.get("failed", 0),
            duration_s=duration,
            # The client's CPU includes making its dataset, a small part of a long run.
            client_cores=run.client_cpu_s / duration,
            server_cores=server_cpu.cores(run.ended_at - duration, run.ended_at),
        )
        return figures

    def own_workload(self, peer: Peer) -> dict[str, Any]:
        """`pandagpt bench`'s mixed chats through its own client (aiohttp, greedy)."""
        requests = make_workload(self.args.mixed_prompts, seed=3, tag=f"peer-{time.time_ns()}")

        async def go() -> tuple[list[Any], float]:
            client = ServiceClient(peer.url, self.args.output_len)
            await client.start()
            try:
                return await run_level(requests, self.args.concurrency, client.one)
            finally:
                await client.aclose()

        before = server_cpu_s(peer.pids)
        results, wall = asyncio.run(go())
        server_cpu = server_cpu_s(peer.pids) - before
        ttft = sorted(r.ttft_s for r in results)
        return {
            "output_throughput": sum(r.tokens for r in results) / wall,
            "request_throughput": len(results) / wall,
            "p50_ttft_ms": 1000 * statistics.median(ttft),
            "p99_ttft_ms": 1000 * ttft[min(len(ttft) - 1, int(0.99 * len(ttft)))],
            "completed": len(results),
            "duration_s": wall,
            "server_cores": server_cpu / wall,
        }

    def side(self, side: str, workload: str, peer: Peer, pair: int) -> dict[str, Any]:
        """Warm-up, then the measured runs of one side in one pair."""
        tag = f"{workload}-{side}-{pair}"
        progress(f"{tag}: warm-up")
        warm_workload = "text" if workload == "text" else "image"
        self.client(peer, warm_workload, f"{tag}-warmup", num_prompts=self.args.concurrency)
        runs: dict[str, Any] = {}
        if workload == "text":
            progress(f"{tag}: vLLM client, {self.args.num_prompts} text requests")
            runs["vllm_client"] = self.client(peer, "text", tag, num_prompts=self.args.num_prompts)
        else:
            progress(f"{tag}: vLLM client, {self.args.mixed_prompts} image requests")
            runs["vllm_client"] = self.client(
                peer, "image", tag, num_prompts=self.args.mixed_prompts
            )
            progress(f"{tag}: pandagpt bench workload, {self.args.mixed_prompts} chats")
            runs["bench_workload"] = self.own_workload(peer)
        return runs

    def sweep(self, side: str, peer: Peer, rates: list[float]) -> list[dict[str, Any]]:
        rows = []
        for rate in rates:
            progress(f"sweep {side}: {rate} req/s")
            figures = self.client(
                peer, "text", f"sweep-{side}-{rate}", num_prompts=self.args.sweep_prompts, rate=rate
            )
            rows.append({"rate": rate, **figures})
        return rows


def summary(runs: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Median and spread (min, max) of each figure across the pairs' runs."""
    out: dict[str, dict[str, float]] = {}
    for key in runs[0]:
        values = [r[key] for r in runs if isinstance(r.get(key), int | float)]
        if values:
            out[key] = {"median": statistics.median(values), "min": min(values), "max": max(values)}
    return out


def ratios(
    service: dict[str, dict[str, float]], peer: dict[str, dict[str, float]]
) -> dict[str, float]:
    """Service / peer, medians against medians (above 1: the service has more of it)."""
    return {
        key: service[key]["median"] / peer[key]["median"]
        for key in service
        if key in peer and peer[key]["median"]
    }


def measure(args: argparse.Namespace) -> dict[str, Any]:
    model_dir = demo_weights(args)
    stamp = datetime.now(UTC)
    out_dir: Path = args.out_dir
    run_dir = out_dir / "runs"
    run_dir.mkdir(parents=True, exist_ok=True)
    runner = Measure(args, model_dir, run_dir)
    report: dict[str, Any] = {
        "when": stamp.isoformat(timespec="seconds"),
        "machine": machine(),
        "settings": {
            k: v
            for k, v in vars(args).items()
            if k not in {"func", "out_dir", "weights_dir", "baseline_root"}
        },
        "peer": "the service from the baseline tree"
        if args.baseline_root
        else "vLLM's OpenAI server (text); the same behind the prompt-embeds front (mixed)",
        "engine": SERVICE_ENGINE,
        "workloads": {},
    }
    for workload in args.workloads.split(","):
        pairs: dict[str, list[dict[str, Any]]] = {side: [] for side in SIDES}
        replies: dict[str, list[str]] = {}
        for pair in range(args.pairs):
            for side in SIDES:
                progress(f"{workload}: pair {pair + 1}/{args.pairs}, starting {side}")
                with side_server(side, workload, model_dir, run_dir, args.baseline_root) as peer:
                    if pair == 0:
                        replies[side] = greedy_replies(peer.url, peer.model, reply_chats(workload))
                    pairs[side].append(runner.side(side, workload, peer, pair))
        report["workloads"][workload] = compare_pairs(pairs, replies)
        write_report(report, out_dir)
    rates = [float(r) for r in args.sweep_rates.split(",") if r]
    if rates:
        report["sweep"] = {}
        for side in SIDES:
            with side_server(side, "text", model_dir, run_dir, args.baseline_root) as peer:
                runner.client(peer, "text", f"sweep-{side}-warmup", num_prompts=args.concurrency)
                report["sweep"][side] = runner.sweep(side, peer, rates)
        plot_sweep(report["sweep"], out_dir / "sweep.png")
    write_report(report, out_dir)
    return report


def write_report(report: dict[str, Any], out_dir: Path) -> None:
    (out_dir / "peer.json").write_text(json.dumps(report, indent=2) + "\n")
    (out_dir / "README.md").write_text(markdown(report))


def compare_pairs(
    pairs: dict[str, list[dict[str, Any]]], replies: dict[str, list[str]]
) -> dict[str, Any]:
    result: dict[str, Any] = {
        "same_replies": {
            "compared": len(replies["service"]),
            "same": sum(
                same_reply(a, b) for a, b in zip(replies["service"], replies["peer"], strict=True)
            ),
            "service": replies["service"],
            "peer": replies["peer"],
        },
        "pairs": pairs,
        "drivers": {},
    }
    for driver in pairs["service"][0]:
        service = summary([p[driver] for p in pairs["service"]])
        peer = summary([p[driver] for p in pairs["peer"]])
        result["drivers"][driver] = {
            "service": service,
            "peer": peer,
            "ratio": ratios(service, peer),
        }
    return result


def machine() -> dict[str, Any]:
    import os

    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def plot_sweep(sweep: dict[str, list[dict[str, Any]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for side, rows in sweep.items():
        rates = [row["rate"] for row in rows]
        label = "pandagpt serve" if side == "service" else "vLLM's server"
        axes[0].plot(rates, [row["output_throughput"] for row in rows], marker="o", label=label)
        axes[1].plot(rates, [row["p99_ttft_ms"] for row in rows], marker="o", label=label)
    axes[0].set(xlabel="offered load (requests/s, Poisson)", ylabel="output tokens/s")
    axes[1].set(xlabel="offered load (requests/s, Poisson)", ylabel="p99 TTFT (ms)")
    axes[1].set_yscale("log")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle("Text, random 48 in / 64 out, ignore_eos: vLLM's benchmark client")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


ROW_FIGURES: list[tuple[str, str, Callable[[float], str]]] = [
    ("output_throughput", "tokens/s", lambda v: f"{v:.0f}"),
    ("request_goodput", "goodput req/s", lambda v: f"{v:.1f}"),
    ("p50_ttft_ms", "TTFT p50 ms", lambda v: f"{v:.0f}"),
    ("p99_ttft_ms", "TTFT p99 ms", lambda v: f"{v:.0f}"),
    ("p50_tpot_ms", "TPOT p50 ms", lambda v: f"{v:.1f}"),
    ("p99_tpot_ms", "TPOT p99 ms", lambda v: f"{v:.1f}"),
    ("p50_itl_ms", "ITL p50 ms", lambda v: f"{v:.1f}"),
    ("p99_itl_ms", "ITL p99 ms", lambda v: f"{v:.1f}"),
    ("server_cores", "server cores", lambda v: f"{v:.2f}"),
    ("client_cores", "client cores", lambda v: f"{v:.2f}"),
]


def markdown(report: dict[str, Any]) -> str:
    lines = [
        "# `pandagpt bench peer`",
        "",
        f"Run {report['when']} on {report['machine']['cpus']} CPUs "
        f"({report['machine']['platform']}); settings: `{json.dumps(report['settings'])}`.",
        "Medians across alternating pairs, spread (min–max) in brackets; ratio = service / peer;"
        f" peer: {report.get('peer', 'vLLM')}.",
        "",
    ]
    for workload, result in report["workloads"].items():
        same = result["same_replies"]
        lines += [
            f"## {workload}",
            "",
            f"Same greedy replies: {same['same']}/{same['compared']}.",
            "",
        ]
        for driver, sides in result["drivers"].items():
            lines += [
                f"### {driver}",
                "",
                "| figure | service | peer | ratio |",
                "|---|---|---|---|",
            ]
            for key, label, fmt in ROW_FIGURES:
                if key not in sides["service"] or key not in sides["peer"]:
                    continue
                cells = []
                for side in SIDES:
                    s = sides[side][key]
                    cells.append(f"{fmt(s['median'])} [{fmt(s['min'])}–{fmt(s['max'])}]")
                ratio = sides["ratio"].get(key)
                lines.append(f"| {label} | {cells[0]} | {cells[1]} | {ratio:.2f}× |")
            lines.append("")
    if "sweep" in report:
        lines += ["## Poisson rate sweep (text)", "", "![sweep](sweep.png)", ""]
        lines += [
            "| req/s | service tokens/s | peer tokens/s | service p99 TTFT ms | peer p99 TTFT ms |"
        ]
        lines += ["|---|---|---|---|---|"]
        for s, p in zip(report["sweep"]["service"], report["sweep"]["peer"], strict=True):
            lines.append(
                f"| {s['rate']:g} | {s['output_throughput']:.0f} | {p['output_throughput']:.0f}"
                f" | {s['p99_ttft_ms']:.0f} | {p['p99_ttft_ms']:.0f} |"
            )
        lines.append("")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    measure(args)
    print((args.out_dir / "README.md").read_text())
    return 0
