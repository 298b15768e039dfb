"""How a batch run reports itself: a progress bar, periodic lines, a summary.

On a terminal a `tqdm` bar shows done/total, rate and ETA, with the errors and
retries so far. Where stderr is not a terminal (CI logs, `nohup`, a pipe) a bar
would be thousands of carriage returns, so a plain line is printed every
`interval_s` instead. The summary at the end is the one thing a script reads,
so it goes to stdout; progress goes to stderr.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from tqdm import tqdm

# Exit statuses (README "Batch"): 2 is usage, found before anything is sent.
EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE = 0, 1, 2


class Progress:
    """Counts a run as requests finish, and shows it."""

    def __init__(
        self,
        total: int,
        *,
        stream: TextIO,
        interval_s: float = 10.0,
        tty: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total = total
        self.done = 0
        self.failed = 0
        self.retries = 0
        self._stream = stream
        self._interval_s = interval_s
        self._clock = clock
        self._start = clock()
        self._last_line = self._start
        tty = stream.isatty() if tty is None else tty
        self._bar: tqdm[None] | None = None
        if tty:
            self._bar = tqdm(total=total, file=stream, unit="req", desc="batch", smoothing=0.1)

    def retried(self) -> None:
        self.retries += 1
        self._refresh_postfix()

    def finished(self, ok: bool) -> None:
        self.done += 1
        self.failed += 0 if ok else 1
        if self._bar is not None:
            self._bar.update(1)
            self._refresh_postfix()
        elif self._clock() - self._last_line >= self._interval_s:
            self._last_line = self._clock()
            print(self.line(), file=self._stream, flush=True)

    def line(self) -> str:
        """One plain progress line: done/total, rate, ETA, errors, retries."""
        elapsed = max(self._clock() - self._start, 1e-9)
        rate = self.done / elapsed
        left = self.total - self.done
        eta = f"{left / rate:.0f}s" if rate > 0 else "?"
        percent = 100 * self.done / self.total if self.total else 100.0
        return (
            f"batch: {self.done}/{self.total} ({percent:.0f}%), {rate:.2f} req/s,"
            f" ETA {eta}, {self.failed} errors, {self.retries} retries"
        )

    def elapsed_s(self) -> float:
        return self._clock() - self._start

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def _refresh_postfix(self) -> None:
        if self._bar is not None:
            self._bar.set_postfix(errors=self.failed, retries=self.retries, refresh=False)


@dataclass(frozen=True)
class Summary:
    """The end of a run, over this run and the whole output file."""

    output: Path
    requests: int  # in the input
    skipped: int  # already in the output before this run
    sent: int  # finished by this run (an error line counts, a cancelled request not)
    succeeded: int  # of `sent`
    retries: int
    elapsed_s: float
    output_failed: int  # error lines in the output file after this run
    stopped_by: int | None = None  # the signal that interrupted the run

    @property
    def exit_code(self) -> int:
        if self.stopped_by is not None:
            return 128 + self.stopped_by  # the shell's convention: 130 for SIGINT
        return EXIT_SOME_FAILED if self.output_failed else EXIT_OK

    def text(self) -> str:
        failed = self.sent - self.succeeded
        head = (
            f"pandagpt batch: {self.requests} requests: {self.skipped} already in the output,"
            f" {self.sent} done now ({self.succeeded} succeeded, {failed} failed),"
            f" {self.retries} retries, {self.elapsed_s:.1f}s."
        )
        in_output = self.skipped + self.sent
        tail = (
            f"Output {self.output}: {in_output - self.output_failed} succeeded,"
            f" {self.output_failed} failed."
        )
        if self.stopped_by is not None:
            name = signal.Signals(self.stopped_by).name
            tail += (
                f" Stopped by {name} with {self.requests - in_output} requests to go:"
                " run the same command again to resume."
            )
        elif self.output_failed:
            tail += " Run again with --retry-errors to retry the failed ones."
        return f"{head}\n{tail}"
