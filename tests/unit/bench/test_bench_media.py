"""`python -m bench.media` end to end on tiny media (no timing asserts)."""

from __future__ import annotations

import json
from pathlib import Path

from bench.media import main


def test_tiny_run_writes_rows_for_every_path(tmp_path: Path, capsys) -> None:
    out = tmp_path / "media.json"
    assert main(["--size", "tiny", "--repeat", "1", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    rows = {(r["item"], r["path"]): r for r in report["rows"]}
    for modality_item in ("h264-160p-1s", "wav-stereo-1s", "jpeg-1mp"):
        for path in ("exact", "upstream", "decode"):
            assert rows[(modality_item, path)]["ms"] > 0
        # The original's way gives the same tensor as the exact path.
        assert rows[(modality_item, "upstream")]["max_abs_diff"] == 0
        assert rows[(modality_item, "exact")]["max_abs_diff"] == 0
    assert rows[("jpeg-1mp", "fast")]["max_abs_diff"] > 0  # close, not identical
    closeness = report["fast_closeness"]["jpeg-1mp"]
    assert 0 < closeness["max_levels"] <= 16 and closeness["cosine"] > 0.99
    assert set(report["summary"]["jpeg-1mp"]) >= {"exact_over_decode", "fast_x", "met"}
    assert "items/s per core" in capsys.readouterr().out
