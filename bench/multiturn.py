"""Multi-turn reuse: TTFT of turns 1–8 of a conversation, with and without prefix caching.

vLLM hashes each full KV block of a prompt-embeddings request from the
embedding rows themselves (sha256 per block), so turn N of a conversation can
reuse turn N−1's prompt blocks only if every row comes out bit-identical each
turn: the token rows (the same ids from the same `embed_tokens` table) and the
soft token (the cached feature of the same media, projected by the same
`llama_proj`). `rows_check` builds consecutive turns with the worker's own
`PromptBuilder` and `Projector` and reports whether turn N−1's prompt is a
bit-identical prefix of turn N's; `multiturn_figure` runs `pandagpt serve`
twice (`PANDAGPT_ENABLE_PREFIX_CACHING` true, then false), checks in the
engine's start-up log that the setting took effect, and times the turns of a
few conversations, each with a first-time image, over HTTP. On CPU vLLM's
block is 128 tokens: no block is reused until a prompt passes 128 tokens.

A section of `pandagpt bench run`, and on its own:

    pandagpt bench multiturn --size small --out-dir artifacts/bench
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import sys
from pathlib import Path
from typing import Any

import torch

from bench.cli import standalone
from bench.options import (
    add_server_env_argument,
    add_weights_arguments,
    demo_weights,
    server_settings,
)
from bench.service_path import ServiceClient
from bench.workload import MediaItem as BenchMedia
from bench.workload import content_part, fixture, unique_bytes

QUESTIONS = [
    "What is in this image?",
    "What colour is it?",
    "Where could this be?",
    "What happens next?",
    "Is it day or night?",
    "Describe the background.",
    "What is the mood?",
    "Summarise our chat.",
]


async def conversation_ttfts(
    client: ServiceClient, image: bytes, turns: int, max_tokens: int
) -> list[float]:
    """TTFT of each turn; every turn resends the history and the same image."""
    parts = [{"type": "text", "text": QUESTIONS[0]}]
    parts.append(content_part(BenchMedia("image", "dog_image.jpg", image)))
    messages: list[dict[str, Any]] = [{"role": "user", "content": parts}]
    ttfts = []
    for turn in range(turns):
        ttft, _, _, text = await client.chat(messages, max_tokens)
        ttfts.append(ttft)
        messages.append({"role": "assistant", "content": text})
        messages.append({"role": "user", "content": QUESTIONS[(turn + 1) % len(QUESTIONS)]})
    return ttfts


def engine_prefix_caching(log: Path) -> bool | None:
    """What vLLM's start-up config line says about prefix caching (None: not found)."""
    found = re.findall(r"enable_prefix_caching=(True|False)", log.read_text(errors="replace"))
    return None if not found else found[-1] == "True"


async def multiturn_figure(
    model_dir: Path,
    log_dir: Path,
    conversations: int = 4,
    turns: int = 8,
    max_tokens: int = 16,
    settings: dict[str, str] | None = None,
) -> dict[str, Any]:
    from bench.server import running_service

    out: dict[str, Any] = {"conversations": conversations, "turns": turns, "max_tokens": max_tokens}
    for caching in (True, False):
        label = "prefix_caching" if caching else "no_prefix_caching"
        log = log_dir / f"serve-{label}.log"
        log.unlink(missing_ok=True)
        env = {**(settings or {}), "PANDAGPT_ENABLE_PREFIX_CACHING": str(caching).lower()}
        env["PANDAGPT_LOG_LEVEL"] = "info"  # vLLM's config line names the setting
        per_turn: list[list[float]] = [[] for _ in range(turns)]
        with running_service(model_dir, log, env) as url:
            client = ServiceClient(url, max_tokens)
            try:
                await client.start()
                image = fixture("dog_image.jpg")
                await conversation_ttfts(client, unique_bytes(image, "mt-warm"), turns, max_tokens)
                for c in range(conversations):
                    fresh = unique_bytes(image, f"mt-{label}-{c}")
                    for turn, ttft in enumerate(
                        await conversation_ttfts(client, fresh, turns, max_tokens)
                    ):
                        per_turn[turn].append(ttft)
            finally:
                await client.aclose()
        out[label] = {
            "engine_says": engine_prefix_caching(log),
            "ttft_p50_s": [statistics.median(t) for t in per_turn],
        }
    on, off = out["prefix_caching"]["ttft_p50_s"], out["no_prefix_caching"]["ttft_p50_s"]
    out["ratio_per_turn"] = [a / b for a, b in zip(on, off, strict=True)]
    out["rows"] = rows_check(model_dir, turns)
    return out


def rows_check(model_dir: Path, turns: int) -> dict[str, Any]:
    """Turn N−1's prompt rows against the start of turn N's, with the worker's builder."""
    from transformers import AutoTokenizer

    from service.worker.projector import Projector
    from service.worker.prompt import Conversation, PromptBuilder, Turn, load_embed_tokens

    tokenizer = AutoTokenizer.from_pretrained(model_dir / "llm")
    builder = PromptBuilder(tokenizer, load_embed_tokens(model_dir / "llm", "cpu", torch.float32))
    projector = Projector.load(model_dir / "projector.safetensors", "cpu", torch.float32)
    feature = torch.randn(projector.in_dim, generator=torch.Generator().manual_seed(0))
    history: list[Turn] = []
    previous = None
    identical, lengths = [], []
    for turn in range(turns):
        history.append(Turn("user", QUESTIONS[turn % len(QUESTIONS)]))
        # The soft token is rebuilt each turn, as the worker does (from the cached feature).
        soft = projector.soft_token([feature.clone()])
        prompt = builder.build(Conversation(list(history)), soft)
        if previous is not None:
            n = previous.num_tokens
            same = torch.equal(prompt.embeds[:n], previous.embeds)
            identical.append(same and prompt.token_ids[:n] == previous.token_ids)
        lengths.append(prompt.num_tokens)
        previous = prompt
        history.append(Turn("assistant", f"An answer of a few words, number {turn}."))
    return {"prompt_tokens": lengths, "prefix_bit_identical": identical}


def render(fig: dict[str, Any]) -> list[str]:
    on, off = fig["prefix_caching"], fig["no_prefix_caching"]
    lines = [
        f"multi-turn ({fig['conversations']} conversations × {fig['turns']} turns, same image; "
        f"vLLM's config: enable_prefix_caching={on['engine_says']} in the first run, "
        f"{off['engine_says']} in the second)",
        "| turn | prompt tokens | TTFT p50 ms, prefix caching | without | ratio |",
        "|---|---|---|---|---|",
    ]
    for turn, (a, b) in enumerate(zip(on["ttft_p50_s"], off["ttft_p50_s"], strict=True)):
        tokens = fig["rows"]["prompt_tokens"][turn]
        lines.append(f"| {turn + 1} | {tokens} | {a * 1000:.1f} | {b * 1000:.1f} | {a / b:.2f} |")
    same = fig["rows"]["prefix_bit_identical"]
    lines.append(f"turn N−1's prompt rows a bit-identical prefix of turn N's: {all(same)} {same}")
    return lines


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_weights_arguments(p)
    p.add_argument("--out-dir", type=Path, default=Path("artifacts/bench"))
    p.add_argument("--conversations", type=int, default=4)
    p.add_argument("--turns", type=int, default=8)
    p.add_argument("--max-tokens", type=int, default=16)
    add_server_env_argument(p)


def run(args: argparse.Namespace) -> int:
    """Writes OUT_DIR/multiturn.json (the `multiturn` section of bench.json) and the table."""
    figure = asyncio.run(
        multiturn_figure(
            demo_weights(args),
            args.out_dir,
            args.conversations,
            args.turns,
            args.max_tokens,
            settings=server_settings(args),
        )
    )
    out = args.out_dir / "multiturn.json"
    out.write_text(json.dumps(figure, indent=2) + "\n")
    print("\n".join(render(figure)))
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(standalone(sys.modules[__name__]))
