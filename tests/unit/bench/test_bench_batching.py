"""`pandagpt bench gpu batching` (bench/gpu_batching.py, bench/batching.py) on CPU, tiny config."""

from __future__ import annotations

import json
from pathlib import Path

from bench.cli import main


def test_quick_run_compares_both_settings_and_writes_json(tmp_path: Path, capsys) -> None:
    out = tmp_path / "batching.json"
    argv = [
        "gpu",
        "batching",
        "--device",
        "cpu",
        "--dtype",
        "fp32",
        "--quick",
        "--rounds",
        "2",
        "--trials",
        "1",
    ]
    assert main([*argv, "--concurrency", "6", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["device"] == "cpu" and report["config"] == "tiny"
    assert report["items"] == 12 and report["trials"] == 1
    for key in ("on_items_per_s", "off_items_per_s", "on_forward_items_per_s"):
        assert report[key] > 0
    assert report["ratio"] == report["on_items_per_s"] / report["off_items_per_s"]
    # Batching on: every bytes-in item went through some forward, in batches of at most 32.
    sizes = {int(size): n for size, n in report["on_batch_sizes"].items()}
    assert sum(size * n for size, n in sizes.items()) == 12 and max(sizes) <= 32
    assert "bytes in" in capsys.readouterr().out
