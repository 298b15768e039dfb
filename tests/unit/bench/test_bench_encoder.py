"""bench/encoder.py runs end to end in --quick mode on CPU (no timing asserts)."""

from __future__ import annotations

import json
from pathlib import Path

from bench.encoder import main


def test_quick_run_writes_json(tmp_path: Path, capsys) -> None:
    out = tmp_path / "bench.json"
    assert main(["--quick", "--device", "cpu", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    rows = {(r["path"], r["batch"], r["mode"]): r for r in report["rows"]}
    assert {("vision", 1, "eager"), ("audio", 2, "eager"), ("video", 1, "eager")} <= set(rows)
    assert all(r["error"] is None and r["latency_ms"] > 0 for r in rows.values())
    assert rows[("vision", 1, "eager")]["ref_latency_ms"] == 10.1
    table = capsys.readouterr().out
    assert "speedup" in table and "vision" in table
