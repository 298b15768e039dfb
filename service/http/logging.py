"""Structured logs: one JSON object per line, carrying the request id.

The request id lives in a contextvar set by `RequestIdMiddleware`; a logging
filter copies it into every record, so any module's `logging.getLogger` lines
are correlated without passing ids around. With tracing on (service.telemetry),
the same filter adds the current span's `trace_id` and `span_id`, so a log
line leads to its trace. API keys never reach a log line: nothing here logs
headers.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from contextvars import ContextVar
from typing import TYPE_CHECKING

from service import telemetry

if TYPE_CHECKING:
    from service.config import ProcessSettings

request_id_var: ContextVar[str | None] = ContextVar("pandagpt_request_id", default=None)
# The name of the API key a request came with (set by the auth middleware), never the key.
api_key_var: ContextVar[str | None] = ContextVar("pandagpt_api_key_name", default=None)

_STANDARD_ATTRS = frozenset(logging.makeLogRecord({}).__dict__) | {
    "message",
    "request_id",
    "trace_id",
    "span_id",
}


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        key_name = api_key_var.get()
        if key_name is not None:
            record.key_name = key_name
        ids = telemetry.log_ids()
        record.trace_id, record.span_id = ids if ids is not None else (None, None)
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None)
        if request_id:
            payload["request_id"] = request_id
        trace_id = getattr(record, "trace_id", None)
        if trace_id:
            payload["trace_id"] = trace_id
            payload["span_id"] = getattr(record, "span_id", None)
        # Fields passed with `extra=` become top-level keys.
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                payload[key] = value
        if record.exc_info:
            payload["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)


def configure_logging(level: str = "info", *, json_lines: bool = True) -> None:
    """Install one stderr handler on the root logger (uvicorn's loggers propagate
    to it when uvicorn runs with `log_config=None`)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RequestIdFilter())
    if json_lines:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")
        )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # The access line comes from our metrics middleware (with request id and route).
    logging.getLogger("uvicorn.access").disabled = True


def configure(settings: ProcessSettings) -> None:
    configure_logging(settings.log_level, json_lines=settings.log_json)
