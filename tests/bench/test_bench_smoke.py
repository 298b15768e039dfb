"""`pandagpt bench run` in miniature: both paths run, agree token for token, and report.

Tiny demo weights, two concurrency levels, a few requests: it checks that the
service (over HTTP, float32) and the reference PandaGPT path (transformers +
peft, float32) produce the same greedy fixed-length replies on the same chats,
and that bench.json and bench.png are written. No timing is asserted: timings
are the benchmark's output, read as ratios, never a test condition.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from bench.cli import build_parser
from bench.full import measure

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the bench makes (then reuses) its tiny demo weights."""
    return tmp_path_factory.mktemp("bench") / "weights"


def test_bench_smoke(tmp_path: Path, weights_dir: Path) -> None:
    args: argparse.Namespace = build_parser(["run"]).parse_args(
        [
            "run",
            "--size=tiny",
            f"--weights-dir={weights_dir}",
            f"--out-dir={tmp_path / 'out'}",
            "--concurrency=1,2",
            "--min-requests=6",  # one of each kind: image, audio, video, image+audio, ...
            "--per-client=1",
            "--max-tokens=12",
            "--warmup=1",
            "--cache-requests=2",
            "--batching-rounds=1",
            "--open-items=8",
            "--media-size=tiny",
            "--multiturn-conversations=1",
            "--multiturn-turns=3",
            "--server-env=PANDAGPT_ENFORCE_EAGER=true",  # no torch.compile: a faster start
        ]
    )
    report = measure(args)

    for level, same in report["same_text"].items():
        assert same["compared"] == 6, level
        assert same["same"] == same["compared"], f"c={level}: differ {same['differ']}"
    written = json.loads((tmp_path / "out" / "bench.json").read_text())
    assert [r["concurrency"] for r in written["service"]] == [1, 2]
    assert [r["concurrency"] for r in written["reference"]] == [1, 2]
    assert set(written["ratios"]["2"]) >= {"requests_per_s", "ttft_p50_s", "e2e_p95_s"}
    assert {"cache", "batching", "targets", "machine", "media", "multiturn"} <= set(written)
    assert written["batching"]["open_on_items_per_s"] > 0
    assert all(level["client_cpu_share"] > 0 for level in written["service"])
    for level in written["service"]:  # the server's processes, found by role
        cores = level["server_cores"]
        assert cores["frontend"] > 0 and cores["engine_core"] > 0 and cores["model_runner"] > 0
    assert written["client_comparison"][0]["path"] == "service-openai-client"
    multiturn = written["multiturn"]
    assert multiturn["prefix_caching"]["engine_says"] is True
    assert multiturn["no_prefix_caching"]["engine_says"] is False
    assert all(multiturn["rows"]["prefix_bit_identical"])
    png = (tmp_path / "out" / "bench.png").read_bytes()
    assert png.startswith(b"\x89PNG")


def test_engine_ceiling_smoke(
    tmp_path: Path, weights_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bench.cli import main

    monkeypatch.setenv("PANDAGPT_ENFORCE_EAGER", "true")
    out = tmp_path / "ceiling.json"
    argv = ["ceiling", "--size=tiny", f"--weights-dir={weights_dir}", "--concurrency=1,3"]
    argv += ["--max-tokens=6", "--trials=2", f"--out={out}"]
    assert main(argv) == 0
    report = json.loads(out.read_text())
    assert report["prompt_rows"] > 5 and report["max_tokens"] == 6
    assert report["reference_tokens_per_s"] > 0
    assert set(report["engine_tokens_per_s"]) == set(report["engine_over_reference"]) == {"1", "3"}
    assert all(rate > 0 for rate in report["engine_tokens_per_s"].values())
    assert [r["concurrency"] for r in report["runs"]] == [1, 3]
    for run_ in report["runs"]:
        assert run_["tokens_per_s"] > 0
        assert set(run_["cores"]) == {"bench", "engine_core", "model_runner", "other"}
        assert run_["cores"]["model_runner"] > 0
