"""Batch input lines are checked whole before sending; output lines are OpenAI's shape."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from service.batch.format import (
    Outcome,
    UsageError,
    encode_line,
    output_line,
    parse_input,
    parse_line,
)


def line(custom_id: str = "a", url: str = "/v1/chat/completions", **extra: object) -> str:
    body = {"messages": [{"role": "user", "content": "hi"}]}
    return json.dumps({"custom_id": custom_id, "method": "POST", "url": url, "body": body, **extra})


def test_a_good_line_parses() -> None:
    request = parse_line(line("img-1", "/v1/embeddings"), 3)
    assert (request.custom_id, request.url, request.line_no) == ("img-1", "/v1/embeddings", 3)
    assert request.body["messages"][0]["content"] == "hi"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("{not json", "not JSON"),
        ("[1, 2]", "not a JSON object"),
        (json.dumps({"method": "POST", "url": "/v1/embeddings", "body": {}}), "custom_id"),
        (json.dumps({"custom_id": "", "url": "/v1/embeddings", "body": {}}), "custom_id"),
        (line(method="GET"), "method must be POST"),
        (line(url="/v1/completions"), "url must be one of"),
        (json.dumps({"custom_id": "a", "url": "/v1/embeddings", "body": [1]}), "body"),
        (
            json.dumps({"custom_id": "a", "url": "/v1/chat/completions", "body": {"stream": True}}),
            "stream",
        ),
    ],
)
def test_bad_lines_say_what_is_wrong(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_line(text, 1)


def test_the_input_is_checked_whole_with_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join([line("a"), "", line("b", url="/v1/nope"), line("a"), "{"]) + "\n")
    with pytest.raises(UsageError) as info:
        parse_input(path)
    problems = info.value.problems
    assert len(problems) == 3
    assert problems[0].startswith(f"{path}:3: url must be one of")
    assert problems[1] == f"{path}:4: duplicate custom_id 'a' (first on line 1)"
    assert problems[2].startswith(f"{path}:5: not JSON")


def test_blank_lines_are_allowed_and_order_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text(f"\n{line('b')}\n\n{line('a')}\n\n")
    assert [r.custom_id for r in parse_input(path)] == ["b", "a"]


def test_an_empty_or_missing_input_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(UsageError, match="no requests"):
        parse_input(tmp_path / "empty.jsonl")
    with pytest.raises(UsageError, match="cannot read"):
        parse_input(tmp_path / "missing.jsonl")


def test_success_line_has_the_answer_and_no_error() -> None:
    body = {"object": "chat.completion", "choices": []}
    out = output_line("a", Outcome.answered(200, "req-1", body))
    assert out["id"].startswith("batch_req_") and out["custom_id"] == "a"
    assert out["response"] == {"status_code": 200, "request_id": "req-1", "body": body}
    assert out["error"] is None


def test_a_refusal_keeps_the_answer_and_names_the_error() -> None:
    body = {"error": {"message": "bad image", "type": "invalid_request_error", "code": "media_x"}}
    out = output_line("a", Outcome.answered(400, "req-2", body))
    assert out["response"]["status_code"] == 400 and out["response"]["body"] == body
    assert out["error"] == {"code": "media_x", "message": "bad image"}
    untyped = Outcome.answered(502, None, "<html>bad gateway</html>")
    assert (untyped.error_code, untyped.error_message) == ("http_502", "<html>bad gateway</html>")


def test_a_local_failure_has_no_response() -> None:
    out = output_line("a", Outcome.local("file_not_found", "no such file: x.jpg"))
    assert out["response"] is None
    assert out["error"] == {"code": "file_not_found", "message": "no such file: x.jpg"}


def test_encoded_lines_are_one_line_each() -> None:
    raw = encode_line(output_line("é\nx", Outcome.answered(200, "r", {"text": "a\nb"})))
    assert raw.endswith(b"\n") and raw.count(b"\n") == 1
    assert json.loads(raw)["custom_id"] == "é\nx"
