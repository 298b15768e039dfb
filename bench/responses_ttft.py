"""TTFT of a continued image conversation: turn 2 by `previous_response_id` on
`/v1/responses` against the same turn sent in full through `/v1/chat/completions`.

Each conversation has a first-time image (distinct bytes, same picture), answered
once through `/v1/responses` (stored); its second turn is then sent both ways, in
alternating order, streamed, timing the first text token. The Responses turn sends
no image (the worker reads its feature from the cache by sha256); the chat turn
resends the image as a data URL (fetched, hashed, shipped, and a cache hit).
Run: `pandagpt bench responses-ttft MODEL_DIR [--conversations N]`; the requests go
through the benchmark's request layer (bench/service_path.py).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.cli import standalone
from bench.server import running_service
from bench.service_path import ServiceClient, chat_text, output_text, responses_text
from bench.workload import fixture, unique_bytes

QUESTION, FOLLOW_UP = "What is in this image?", "What colour is it?"


async def one_conversation(client: ServiceClient, index: int, max_tokens: int) -> dict[str, float]:
    image = unique_bytes(fixture("dog_image.jpg"), f"responses-ttft-{index}-{time.time_ns()}")
    url = "data:image/jpeg;base64," + base64.b64encode(image).decode()
    _, first = await client.respond(
        {
            "max_output_tokens": max_tokens,
            "input": [
                {
                    "role": "user",
                    "content": [
                        {"type": "input_text", "text": QUESTION},
                        {"type": "input_image", "image_url": url, "detail": "auto"},
                    ],
                }
            ],
        }
    )
    history = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": QUESTION},
                {"type": "image_url", "image_url": {"url": url}},
            ],
        },
        {"role": "assistant", "content": output_text(first)},
        {"role": "user", "content": FOLLOW_UP},
    ]
    by_id: dict[str, Any] = {
        "model": client.model, "input": FOLLOW_UP, "previous_response_id": first["id"],
        "stream": True, "max_output_tokens": max_tokens, "store": False, "ignore_eos": True,
    }  # fmt: skip
    in_full: dict[str, Any] = {
        "model": client.model, "messages": history, "stream": True, "max_tokens": max_tokens,
        "ignore_eos": True,
    }  # fmt: skip
    order = [
        ("responses", "/v1/responses", by_id, responses_text),
        ("chat", "/v1/chat/completions", in_full, chat_text),
    ]
    if index % 2:
        order.reverse()
    ttfts = {}
    for name, path, body, text_of in order:
        reply = await client.stream(path, body, text_of)
        assert reply.text, "no text came back"
        ttfts[name] = reply.ttft_s
    return ttfts


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("--conversations", type=int, default=20)
    parser.add_argument("--max-tokens", type=int, default=8)
    parser.add_argument("--log", type=Path, default=None)


async def conversations(url: str, count: int, max_tokens: int) -> list[dict[str, float]]:
    client = ServiceClient(url, max_tokens, timeout_s=120)
    try:
        await client.start()
        await one_conversation(client, -1, max_tokens)  # warm-up, not counted
        return [await one_conversation(client, i, max_tokens) for i in range(count)]
    finally:
        await client.aclose()


def run(args: argparse.Namespace) -> int:
    log = args.log or Path(tempfile.mkdtemp()) / "serve.log"
    with running_service(args.model_dir, log, {"PANDAGPT_ENFORCE_EAGER": "true"}) as url:
        runs = asyncio.run(conversations(url, args.conversations, args.max_tokens))
    by_id = [r["responses"] * 1000 for r in runs]
    full = [r["chat"] * 1000 for r in runs]
    ratios = [r["responses"] / r["chat"] for r in runs]
    print(
        json.dumps(
            {
                "conversations": len(runs),
                "ttft_ms_previous_response_id_median": round(statistics.median(by_id), 1),
                "ttft_ms_chat_in_full_median": round(statistics.median(full), 1),
                "ratio_of_medians": round(statistics.median(by_id) / statistics.median(full), 3),
                "median_of_paired_ratios": round(statistics.median(ratios), 3),
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(standalone(sys.modules[__name__]))
