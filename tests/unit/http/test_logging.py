"""Structured logs carry the request id and never the API key."""

from __future__ import annotations

import io
import json
import logging

from service.http.logging import JsonFormatter, RequestIdFilter, request_id_var


def test_json_lines_with_request_id() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter())
    log = logging.getLogger("test.pandagpt.json")
    log.addHandler(handler)
    log.propagate = False
    log.setLevel(logging.INFO)
    token = request_id_var.set("req-7")
    try:
        log.info("hello %s", "world", extra={"status": 200})
    finally:
        request_id_var.reset(token)
        log.removeHandler(handler)
    line = json.loads(stream.getvalue())
    assert line["message"] == "hello world"
    assert line["request_id"] == "req-7"
    assert line["status"] == 200
    assert line["level"] == "info"
