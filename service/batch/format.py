"""The line formats of a batch: OpenAI's Batch API input lines and output lines.

Input, one JSON object a line:
`{"custom_id": str, "method": "POST", "url": "/v1/chat/completions" | "/v1/embeddings",
"body": {...}}`. The whole file is checked before anything is sent: a run that
stops at line 9000 on a typo wastes the 8999 answers before it, so every
problem is collected and reported at once (exit status 2).

Output, one JSON object a line, in OpenAI's batch output shape:
`{"id", "custom_id", "response": {"status_code", "request_id", "body"} | null,
"error": null | {"code", "message"}}`. `response` is what the service answered
(also for a refusal such as a 400); it is null when no answer came (a missing
file, a connection that never worked, a timeout).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ENDPOINTS = frozenset({"/v1/chat/completions", "/v1/embeddings"})
# More problems than this are summarised: the first ones say what is wrong.
_MAX_REPORTED = 20


class UsageError(Exception):
    """Bad input or arguments, found before anything was sent (exit status 2)."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        shown = problems[:_MAX_REPORTED]
        more = len(problems) - len(shown)
        text = "\n".join(shown) + (f"\n... and {more} more" if more else "")
        super().__init__(text)


@dataclass(frozen=True)
class BatchRequest:
    """One input line, checked."""

    custom_id: str
    url: str
    body: dict[str, Any]
    line_no: int


def parse_line(text: str, line_no: int) -> BatchRequest:
    """One input line → a request; `ValueError` says what is wrong with it."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON ({exc.msg})") from None
    if not isinstance(raw, dict):
        raise ValueError("not a JSON object")
    custom_id = raw.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id:
        raise ValueError("custom_id must be a non-empty string")
    method = raw.get("method", "POST")
    if method != "POST":
        raise ValueError(f"method must be POST (got {method!r})")
    url = raw.get("url")
    if url not in ENDPOINTS:
        raise ValueError(f"url must be one of {sorted(ENDPOINTS)} (got {url!r})")
    body = raw.get("body")
    if not isinstance(body, dict):
        raise ValueError("body must be a JSON object")
    if body.get("stream"):
        # A batch line has one answer; streamed chunks have nowhere to go.
        raise ValueError("body.stream must be false or absent in a batch")
    return BatchRequest(custom_id=custom_id, url=url, body=body, line_no=line_no)


def parse_input(path: Path) -> list[BatchRequest]:
    """Every request of the input file, or `UsageError` with every problem found.
    Blank lines are allowed (a trailing newline, spacing); custom_ids must be unique."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError([f"{path}: cannot read the input file ({exc})"]) from None
    requests: list[BatchRequest] = []
    problems: list[str] = []
    first_seen: dict[str, int] = {}
    for line_no, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            request = parse_line(text, line_no)
        except ValueError as exc:
            problems.append(f"{path}:{line_no}: {exc}")
            continue
        if request.custom_id in first_seen:
            problems.append(
                f"{path}:{line_no}: duplicate custom_id {request.custom_id!r}"
                f" (first on line {first_seen[request.custom_id]})"
            )
            continue
        first_seen[request.custom_id] = line_no
        requests.append(request)
    if problems:
        raise UsageError(problems)
    if not requests:
        raise UsageError([f"{path}: no requests in the input file"])
    return requests


@dataclass(frozen=True)
class Outcome:
    """What became of one request: the service's answer, and/or an error."""

    status_code: int | None = None
    request_id: str | None = None
    body: Any = None
    error_code: str | None = None
    error_message: str | None = None
    retries: int = field(default=0, compare=False)

    @property
    def ok(self) -> bool:
        return self.error_code is None

    @classmethod
    def local(cls, code: str, message: str, *, retries: int = 0) -> Outcome:
        """A failure with no answer from the service (a file, the network, a timeout)."""
        return cls(error_code=code, error_message=message, retries=retries)

    @classmethod
    def answered(
        cls, status_code: int, request_id: str | None, body: Any, *, retries: int = 0
    ) -> Outcome:
        """The service answered: 2xx is a success, anything else an error taken from
        OpenAI's error body (`code`, else `type`, else the status)."""
        if 200 <= status_code < 300:
            return cls(status_code, request_id, body, retries=retries)
        info = body.get("error") if isinstance(body, dict) else None
        info = info if isinstance(info, dict) else {}
        code = info.get("code") or info.get("type") or f"http_{status_code}"
        message = info.get("message") or (body if isinstance(body, str) else "") or "no message"
        return cls(
            status_code=status_code,
            request_id=request_id,
            body=body,
            error_code=str(code),
            error_message=str(message),
            retries=retries,
        )


def output_line(custom_id: str, outcome: Outcome) -> dict[str, Any]:
    """The OpenAI batch output object for one finished request."""
    response = None
    if outcome.status_code is not None:
        response = {
            "status_code": outcome.status_code,
            "request_id": outcome.request_id,
            "body": outcome.body,
        }
    error = None
    if not outcome.ok:
        error = {"code": outcome.error_code, "message": outcome.error_message}
    return {
        "id": f"batch_req_{uuid.uuid4().hex}",
        "custom_id": custom_id,
        "response": response,
        "error": error,
    }


def encode_line(line: dict[str, Any]) -> bytes:
    """One output line as bytes, newline included: written with a single call, so a
    line is either whole in the file or (after a crash) the torn tail resumption cuts."""
    return (json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
