"""Progress: a bar on a terminal, plain lines elsewhere; the summary and exit status."""

from __future__ import annotations

import io
import signal
from pathlib import Path

from service.batch.progress import Progress, Summary


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_plain_lines_every_interval_when_not_a_terminal() -> None:
    stream, clock = io.StringIO(), Clock()
    progress = Progress(10, stream=stream, interval_s=5.0, tty=False, clock=clock)
    clock.now += 1
    progress.finished(ok=True)  # within the interval: nothing printed
    assert stream.getvalue() == ""
    clock.now += 4
    progress.retried()
    progress.finished(ok=False)
    assert stream.getvalue() == "batch: 2/10 (20%), 0.40 req/s, ETA 20s, 1 errors, 1 retries\n"


def test_a_bar_on_a_terminal_shows_errors_and_retries() -> None:
    stream = io.StringIO()
    progress = Progress(4, stream=stream, tty=True)
    progress.finished(ok=True)
    progress.retried()
    progress.finished(ok=False)
    progress.close()
    last = stream.getvalue().split("\r")[-1]
    assert "2/4" in last and "errors=1" in last and "retries=1" in last and "req/s" in last


def summary(**kw: object) -> Summary:
    base = {"output": Path("out.jsonl"), "requests": 10, "skipped": 3, "sent": 7,
            "succeeded": 7, "retries": 2, "elapsed_s": 1.5, "output_failed": 0}  # fmt: skip
    return Summary(**{**base, **kw})  # type: ignore[arg-type]


def test_exit_status_and_summary_text() -> None:
    assert summary().exit_code == 0
    assert "3 already in the output, 7 done now (7 succeeded, 0 failed), 2 retries" in (
        summary().text()
    )
    failed = summary(succeeded=6, output_failed=2)  # one now, one kept from before
    assert failed.exit_code == 1
    assert "8 succeeded, 2 failed. Run again with --retry-errors" in failed.text()
    stopped = summary(sent=4, succeeded=4, stopped_by=signal.SIGTERM)
    assert stopped.exit_code == 143
    assert "Stopped by SIGTERM with 3 requests to go" in stopped.text()
