"""Resumption: only whole output lines count, a torn tail is cut, errors may be redone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from service.batch.format import Outcome, UsageError, encode_line, output_line
from service.batch.output import OutputFile, scan_output


def ok(custom_id: str) -> bytes:
    return encode_line(output_line(custom_id, Outcome.answered(200, "r", {"x": 1})))


def failed(custom_id: str) -> bytes:
    return encode_line(output_line(custom_id, Outcome.local("file_not_found", "gone")))


def test_no_output_file_means_nothing_done(tmp_path: Path) -> None:
    existing = scan_output(tmp_path / "out.jsonl")
    assert existing.done(retry_errors=False) == frozenset()
    assert not existing.torn


def test_whole_lines_count_and_a_torn_tail_is_cut_on_open(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    whole = ok("a") + failed("b")
    path.write_bytes(whole + ok("c")[:25])  # killed in the middle of writing "c"
    existing = scan_output(path)
    assert existing.succeeded == {"a"} and existing.failed == {"b"}
    assert existing.torn and existing.whole_bytes == len(whole)
    assert existing.done(retry_errors=False) == {"a", "b"}
    assert existing.done(retry_errors=True) == {"a"}
    assert path.read_bytes() != whole  # the scan changes nothing

    output = OutputFile(path, existing, drop_failed=False)
    output.open()
    output.write(output_line("c", Outcome.answered(200, "r2", {})))
    output.close()
    lines = [json.loads(raw) for raw in path.read_bytes().splitlines()]
    assert [line["custom_id"] for line in lines] == ["a", "b", "c"]


def test_retry_errors_drops_the_error_lines_it_will_redo(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    path.write_bytes(ok("a") + failed("b") + ok("c"))
    output = OutputFile(path, scan_output(path), drop_failed=True)
    output.open()
    output.write(output_line("b", Outcome.answered(200, "r", {})))
    output.close()
    lines = [json.loads(raw) for raw in path.read_bytes().splitlines()]
    assert [(line["custom_id"], line["error"]) for line in lines] == [
        ("a", None),
        ("c", None),
        ("b", None),
    ]
    assert not path.with_name("out.jsonl.rewrite").exists()


def test_a_whole_line_that_is_not_ours_refuses_the_run(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    path.write_bytes(ok("a") + b'{"no": "custom_id"}\n' + b"garbage\n")
    with pytest.raises(UsageError) as info:
        scan_output(path)
    assert f"{path}:2: not a batch output line" in info.value.problems
    assert f"{path}:3: not a batch output line" in info.value.problems


def test_a_later_success_wins_over_an_earlier_error(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    path.write_bytes(failed("a") + ok("a"))
    existing = scan_output(path)
    assert existing.succeeded == {"a"} and existing.failed == frozenset()


def test_two_runs_cannot_append_to_one_file(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    first = OutputFile(path, scan_output(path), drop_failed=False)
    first.open()
    try:
        with pytest.raises(UsageError, match="another pandagpt batch"):
            OutputFile(path, scan_output(path), drop_failed=False).open()
    finally:
        first.close()
