"""TTFT of a continued image conversation: turn 2 by `previous_response_id` on
`/v1/responses` against the same turn sent in full through `/v1/chat/completions`.

Each conversation has a first-time image (distinct bytes, same picture), answered
once through `/v1/responses` (stored); its second turn is then sent both ways, in
alternating order, streamed, timing the first text token. The Responses turn sends
no image (the worker reads its feature from the cache by sha256); the chat turn
resends the image as a data URL (fetched, hashed, shipped, and a cache hit).
Run: `python -m bench.responses_ttft MODEL_DIR [--conversations N]`.
"""

from __future__ import annotations

import argparse
import base64
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from openai import OpenAI

from bench.server import running_service
from bench.workload import fixture, unique_bytes

QUESTION, FOLLOW_UP = "What is in this image?", "What colour is it?"


def _is_text(event: Any, kind: str) -> bool:
    if kind == "chat":
        return bool(event.choices and event.choices[0].delta.content)
    return bool(event.type == "response.output_text.delta")


def _first_text(stream: Any, kind: str, start: float) -> float:
    """Seconds from `start` (before the request went out: the reply's headers wait for the
    first token) to the first text; the stream is read to its end."""
    first = None
    for event in stream:
        if first is None and _is_text(event, kind):
            first = time.perf_counter() - start
    assert first is not None, "no text came back"
    return first


def one_conversation(client: OpenAI, model: str, index: int, max_tokens: int) -> dict[str, float]:
    image = unique_bytes(fixture("dog_image.jpg"), f"responses-ttft-{index}-{time.time_ns()}")
    url = "data:image/jpeg;base64," + base64.b64encode(image).decode()
    first = client.responses.create(
        model=model,
        max_output_tokens=max_tokens,
        input=[
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": QUESTION},
                    {"type": "input_image", "image_url": url, "detail": "auto"},
                ],
            }
        ],
    )
    history = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": QUESTION},
                {"type": "image_url", "image_url": {"url": url}},
            ],
        },
        {"role": "assistant", "content": first.output_text},
        {"role": "user", "content": FOLLOW_UP},
    ]

    def by_id() -> float:
        start = time.perf_counter()
        stream = client.responses.create(
            model=model, input=FOLLOW_UP, previous_response_id=first.id, stream=True,
            max_output_tokens=max_tokens, store=False, extra_body={"ignore_eos": True},
        )  # fmt: skip
        return _first_text(stream, "responses", start)

    def in_full() -> float:
        start = time.perf_counter()
        stream = client.chat.completions.create(
            model=model, messages=history, stream=True, max_tokens=max_tokens,  # type: ignore[arg-type]
            extra_body={"ignore_eos": True},
        )  # fmt: skip
        return _first_text(stream, "chat", start)

    order = [("responses", by_id), ("chat", in_full)]
    if index % 2:
        order.reverse()
    return {name: run() for name, run in order}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("--conversations", type=int, default=20)
    parser.add_argument("--max-tokens", type=int, default=8)
    parser.add_argument("--log", type=Path, default=None)
    args = parser.parse_args()
    log = args.log or Path(tempfile.mkdtemp()) / "serve.log"
    with running_service(args.model_dir, log, {"PANDAGPT_ENFORCE_EAGER": "true"}) as url:
        client = OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=120)
        model = client.models.list().data[0].id
        one_conversation(client, model, -1, args.max_tokens)  # warm-up, not counted
        runs = [
            one_conversation(client, model, i, args.max_tokens) for i in range(args.conversations)
        ]
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


if __name__ == "__main__":
    main()
