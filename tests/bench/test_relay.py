"""`pandagpt bench relay` in miniature: a gateway process relays a fast worker's streams.

Real processes (a worker serving the internal API over `FastWorker`, `pandagpt
gateway`), real HTTP; the light client checks every reply's token count. The
figures are the benchmark's output; the test checks they are there and sane.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.cli import build_parser

pytestmark = pytest.mark.slow


def test_relay_smoke(tmp_path: Path) -> None:
    from bench.relay import run

    out = tmp_path / "relay.json"
    args = build_parser(["relay"]).parse_args(
        ["relay", "--concurrency=1,4", "--max-tokens=16", "--requests-per-stream=2", f"--out={out}"]
    )
    assert run(args) == 0
    levels = json.loads(out.read_text())["levels"]
    assert [row["concurrency"] for row in levels] == [1, 4]
    assert [row["tokens"] for row in levels] == [2 * 16, 8 * 16]
    assert all(row["tokens_per_gateway_core_s"] > 0 for row in levels)
