"""`pandagpt bench encoder` runs end to end in --quick mode on CPU (no timing asserts)."""

from __future__ import annotations

import json
from pathlib import Path

from bench.cli import main


def test_quick_run_writes_json(tmp_path: Path, capsys) -> None:
    out = tmp_path / "bench.json"
    assert main(["encoder", "--quick", "--device", "cpu", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    rows = {(r["path"], r["batch"], r["mode"]): r for r in report["rows"]}
    assert {("vision", 1, "eager"), ("audio", 2, "eager"), ("video", 1, "eager")} <= set(rows)
    assert all(r["error"] is None and r["latency_ms"] > 0 for r in rows.values())
    assert rows[("vision", 1, "eager")]["ref_latency_ms"] == 10.1
    table = capsys.readouterr().out
    assert "speedup" in table and "vision" in table


def test_table_reports_best_row_per_target(capsys) -> None:
    from bench.encoder import Row, print_table

    rows = [
        Row("vision", 1, "eager", 6.0, 166.7, 10.1, 1.7, "latency_ms<=5", False),
        Row("vision", 1, "graph", 2.0, 500.0, 2.4, 1.2, "latency_ms<=5", True),
        Row("vision", 64, "eager", 40.0, 1600.0, 57.9, 1.4, "items_per_s>=1700", False),
        Row("vision", 64, "compile", None, None, error="RuntimeError: boom"),
    ]
    print_table(rows)
    out = capsys.readouterr().out
    assert "target vision batch 1 latency_ms<=5: best 2.00 ms" in out and "(graph) PASS" in out
    assert "target vision batch 64 items_per_s>=1700: best 40.00 ms" in out
    assert "(eager) FAIL" in out and "ERROR RuntimeError: boom" in out
