"""What a grammar costs: throughput with a `json_schema` constraint against free text
at a fixed concurrency, and the schema compile time for a typical and a large schema.

    pandagpt bench structured --size small --concurrency 32 --requests 64

Throughput: `pandagpt serve` on demo weights (bench/server.py), text-only chats,
non-streaming (bench/service_path.py), `max_tokens` each. Free text runs
with `ignore_eos` (fixed length); the constrained run uses a schema no reply can
finish within `max_tokens` (an array of at least `max_tokens` small objects), so
every token of both runs is generated, the constrained ones under the grammar's
mask: the same work but the grammar. Compile time: the worker's own pre-compile
(service/worker/grammar.py, xgrammar, the served tokenizer), first compile (cold)
and a repeat (its cache).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from bench.cli import standalone
from bench.load import run_level
from bench.options import add_weights_arguments, demo_weights
from bench.server import running_service
from bench.service_path import ServiceClient

ITEM = {
    "type": "object",
    "properties": {
        "kind": {"enum": ["bird", "dog", "car", "tree"]},
        "n": {"type": "integer", "minimum": 0, "maximum": 999},
        "ok": {"type": "boolean"},
    },
    "required": ["kind", "n", "ok"],
    "additionalProperties": False,
}


def long_schema(min_items: int) -> dict[str, Any]:
    return {"type": "array", "items": ITEM, "minItems": min_items}


def typical_schema() -> dict[str, Any]:
    """An extraction schema of the usual size: a dozen fields, one nested object, enums."""
    fields: dict[str, Any] = {f"field_{i}": {"type": "string", "maxLength": 64} for i in range(8)}
    fields["kind"] = {"enum": ["photo", "drawing", "screenshot"]}
    fields["objects"] = {"type": "array", "items": ITEM, "maxItems": 16}
    fields["where"] = {
        "type": "object",
        "properties": {"indoor": {"type": "boolean"}, "country": {"type": "string"}},
        "required": ["indoor"],
    }
    return {"type": "object", "properties": fields, "required": list(fields)}


def large_schema() -> dict[str, Any]:
    """Near the request limit (32 KiB as JSON): 60 objects of 10 typed fields."""
    one = {f"q{j}": {"type": ["integer", "string", "boolean"]} for j in range(10)}
    props = {f"p{i}": {"type": "object", "properties": one} for i in range(60)}
    return {"type": "object", "properties": props}


def compile_times(model_dir: Path) -> dict[str, Any]:
    from transformers import AutoTokenizer

    from service.contract import OutputConstraint
    from service.worker.grammar import GrammarChecker

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir / "llm"))
    checker = GrammarChecker(tokenizer, timeout_s=60)
    start = time.perf_counter()
    checker.compile(OutputConstraint(kind="json_object"))
    out: dict[str, Any] = {
        "vocab": len(tokenizer),
        "tokenizer_info_s": time.perf_counter() - start,
    }
    for name, schema in (("typical", typical_schema()), ("large", large_schema())):
        constraint = OutputConstraint(kind="json_schema", json_schema=schema)
        out[name] = {
            "bytes": len(json.dumps(schema, separators=(",", ":"))),
            "cold_s": checker.compile(constraint),
            "cached_s": checker.compile(constraint),
        }
    checker.close()
    return out


async def level(
    url: str, concurrency: int, requests: int, max_tokens: int, constrained: bool
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "messages": [{"role": "user", "content": "List the objects you see."}],
        "max_tokens": max_tokens,
        "temperature": 0.0,
    }
    if constrained:
        schema = long_schema(max_tokens)
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "l", "schema": schema},
        }
    else:
        body["ignore_eos"] = True
    client = ServiceClient(url, max_tokens)
    try:
        await client.start()
        replies, wall = await run_level([body] * requests, concurrency, client.complete)
    finally:
        await client.aclose()
    tokens = sum(reply["usage"]["completion_tokens"] for _, reply in replies)
    return {
        "constrained": constrained,
        "requests": requests,
        "wall_s": wall,
        "requests_per_s": requests / wall,
        "tokens_per_s": tokens / wall,
        "e2e_p50_s": statistics.median(e2e for e2e, _ in replies),
    }


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_weights_arguments(p)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--requests", type=int, default=64)
    p.add_argument("--max-tokens", type=int, default=32)
    p.add_argument("--out", type=Path, default=Path("artifacts/bench/structured.json"))


def run(args: argparse.Namespace) -> int:
    model_dir = demo_weights(args)
    result: dict[str, Any] = {"size": args.size, "compile": compile_times(model_dir)}
    log = args.out.parent / "structured-serve.log"
    with running_service(model_dir, log, {"PANDAGPT_MAX_NUM_SEQS": str(args.concurrency)}) as url:
        # warm-up: the engine's first steps and the schema's first compile
        asyncio.run(level(url, 2, 2, args.max_tokens, True))
        asyncio.run(level(url, 2, 2, args.max_tokens, False))
        result["levels"] = [
            asyncio.run(level(url, args.concurrency, args.requests, args.max_tokens, c))
            for c in (False, True)
        ]
    free, constrained = result["levels"]
    result["grammar_cost"] = 1 - constrained["tokens_per_s"] / free["tokens_per_s"]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(standalone(sys.modules[__name__]))
