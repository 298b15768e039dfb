"""The output file: what an earlier run finished, and appending whole lines.

Resumption reads the output file back: only whole lines (ending in a newline)
count. A run killed mid-write (SIGKILL, a full disk) can leave a torn last
line; it is cut away before appending, so the file stays valid JSONL and that
request is simply done again. A whole line that is not a batch output object is
not ours to guess about: it stops the run before anything is sent (exit 2).

Each line is written with one `write` and flushed, on the event loop: a
cancellation lands only at an `await`, so a finished request's line is either
written whole or not at all. An advisory lock keeps two runs from appending to
the same file at once (their lines would interleave and requests run twice).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from service.batch.format import UsageError, encode_line


@dataclass(frozen=True)
class Existing:
    """What the output file already holds (read-only: nothing is changed by the scan)."""

    succeeded: frozenset[str] = frozenset()
    failed: frozenset[str] = frozenset()
    whole_bytes: int = 0  # the file's length up to the end of its last whole line
    torn: bool = False  # bytes after the last newline: a line cut mid-write

    def done(self, *, retry_errors: bool) -> frozenset[str]:
        """The custom_ids a run skips: all recorded, or only the successes."""
        return self.succeeded if retry_errors else self.succeeded | self.failed


def scan_output(path: Path) -> Existing:
    """Read an earlier run's output; `UsageError` names any whole line that is not
    a batch output object."""
    if not path.exists():
        return Existing()
    succeeded: set[str] = set()
    failed: set[str] = set()
    problems: list[str] = []
    offset = 0
    torn = False
    with path.open("rb") as file:
        for line_no, raw in enumerate(file, start=1):
            if not raw.endswith(b"\n"):
                torn = True  # only the last line can lack its newline
                break
            offset += len(raw)
            if not raw.strip():
                continue
            custom_id, ok = _read_line(raw)
            if custom_id is None:
                problems.append(f"{path}:{line_no}: not a batch output line")
            elif ok:
                succeeded.add(custom_id)
            else:
                failed.add(custom_id)
    if problems:
        problems.append(f"{path}: fix or move the output file; it is appended to, never rewritten")
        raise UsageError(problems)
    # A success recorded after an earlier error line (a --retry-errors run that was
    # stopped before its rewrite) counts as a success.
    return Existing(frozenset(succeeded), frozenset(failed - succeeded), offset, torn)


def _read_line(raw: bytes) -> tuple[str | None, bool]:
    """(custom_id, succeeded) of one output line; custom_id None when it is not one."""
    try:
        line = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None, False
    if not isinstance(line, dict) or not isinstance(line.get("custom_id"), str):
        return None, False
    return line["custom_id"], line.get("error") is None


class OutputFile:
    """The output file opened for appending, after cutting a torn tail and, for
    `--retry-errors`, dropping the error lines that will be done again."""

    def __init__(self, path: Path, existing: Existing, *, drop_failed: bool) -> None:
        self.path = path
        self._existing = existing
        self._drop_failed = drop_failed and bool(existing.failed)
        self._file: IO[bytes] | None = None

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        file = self.path.open("ab")
        try:
            fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            file.close()
            raise UsageError([f"{self.path}: another pandagpt batch is writing to it"]) from None
        self._file = file
        if self._existing.torn:
            os.truncate(self.path, self._existing.whole_bytes)
        if self._drop_failed:
            self._rewrite_without(self._existing.failed)

    def _rewrite_without(self, failed: frozenset[str]) -> None:
        """Keep every line but the error lines of `failed`; the new file replaces the
        old one atomically, so a crash leaves one or the other, never a mix."""
        assert self._file is not None
        tmp = self.path.with_name(self.path.name + ".rewrite")
        with self.path.open("rb") as old, tmp.open("wb") as new:
            for raw in old:
                custom_id, ok = _read_line(raw)
                if ok or custom_id not in failed:
                    new.write(raw)
            new.flush()
            os.fsync(new.fileno())
        os.replace(tmp, self.path)
        # The lock and handle were on the old inode: take them on the new file.
        self._file.close()
        self._file = self.path.open("ab")
        fcntl.flock(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)

    def write(self, line: dict[str, Any]) -> None:
        assert self._file is not None, "open() first"
        self._file.write(encode_line(line))
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None
