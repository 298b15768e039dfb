"""The batch loop: plan (what is left to do), send with a concurrency cap, stop cleanly.

`plan` does everything that can refuse a run before a request is sent: the
whole input is checked and the output file read back, so a bad line or a
broken output file costs nothing (exit 2). `run` then connects (a URL, or the
app in process), asks `GET /v1/models` once (a wrong URL or key is a usage
error too, not a thousand error lines), and lets `concurrency` workers take
requests in input order. Each finished request becomes one output line at once:
results are in the file as they arrive, in completion order, and a run that
dies loses only what was in flight.

SIGINT and SIGTERM cancel the workers: in-flight requests are abandoned (their
connections closed, which aborts their generations in the service), no partial
line is written, and the exit status is 128 + the signal. Running the same
command again resumes.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import httpx

from service.batch.client import BatchClient, RetryPolicy
from service.batch.format import BatchRequest, Outcome, UsageError, output_line, parse_input
from service.batch.media import MediaFileError, encode_body
from service.batch.output import Existing, OutputFile, scan_output
from service.batch.progress import Progress, Summary

ClientFactory = Callable[[], AbstractAsyncContextManager[httpx.AsyncClient]]
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@dataclass(frozen=True)
class RunOptions:
    input: Path
    output: Path
    concurrency: int = 4
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    retry_errors: bool = False
    progress_interval_s: float = 10.0


@dataclass(frozen=True)
class Plan:
    requests: list[BatchRequest]  # every request of the input
    todo: list[BatchRequest]  # those this run sends, in input order
    existing: Existing
    kept_failed: int  # error lines of input requests that stay in the output

    @property
    def skipped(self) -> int:
        return len(self.requests) - len(self.todo)


def plan(options: RunOptions) -> Plan:
    """What this run will do; `UsageError` for anything that refuses the run."""
    if options.input.resolve() == options.output.resolve():
        raise UsageError([f"{options.output}: the output file must not be the input file"])
    requests = parse_input(options.input)
    existing = scan_output(options.output)
    done = existing.done(retry_errors=options.retry_errors)
    todo = [r for r in requests if r.custom_id not in done]
    kept = 0 if options.retry_errors else sum(r.custom_id in existing.failed for r in requests)
    return Plan(requests=requests, todo=todo, existing=existing, kept_failed=kept)


async def run(
    the_plan: Plan,
    options: RunOptions,
    connect: ClientFactory,
    *,
    stream: TextIO = sys.stderr,
    handle_signals: bool = True,
) -> Summary:
    """Send every request of the plan; the summary of the run (also when stopped)."""
    if not the_plan.todo:  # nothing left: no connection (in process: no model loaded)
        return _summary(the_plan, options, None, None)
    async with connect() as http:
        await _preflight(BatchClient(http, options.policy))
        output = OutputFile(options.output, the_plan.existing, drop_failed=options.retry_errors)
        output.open()
        # Started after connecting: an in-process engine's start-up is not in the rate.
        progress = Progress(
            len(the_plan.todo), stream=stream, interval_s=options.progress_interval_s
        )
        client = BatchClient(http, options.policy, on_retry=progress.retried)
        try:
            stopped_by = await _run_workers(
                the_plan.todo, client, output, progress, options, handle_signals
            )
        finally:
            output.close()
            progress.close()
    return _summary(the_plan, options, progress, stopped_by)


def _summary(
    the_plan: Plan, options: RunOptions, progress: Progress | None, stopped_by: int | None
) -> Summary:
    done = progress.done if progress else 0
    failed = progress.failed if progress else 0
    return Summary(
        output=options.output,
        requests=len(the_plan.requests),
        skipped=the_plan.skipped,
        sent=done,
        succeeded=done - failed,
        retries=progress.retries if progress else 0,
        elapsed_s=progress.elapsed_s() if progress else 0.0,
        output_failed=the_plan.kept_failed + failed,
        stopped_by=stopped_by,
    )


async def _preflight(client: BatchClient) -> None:
    """One `GET /v1/models` before any request: a wrong URL, key or a service that
    never comes up is a usage error, found before anything is written."""
    outcome = await client.get("/v1/models")
    if not outcome.ok:
        status = f"HTTP {outcome.status_code}" if outcome.status_code else "no answer"
        raise UsageError(
            [
                f"the service did not answer GET /v1/models ({status}, {outcome.error_code}:"
                f" {outcome.error_message}); check --url and --api-key"
            ]
        )


async def _run_workers(
    todo: list[BatchRequest],
    client: BatchClient,
    output: OutputFile,
    progress: Progress,
    options: RunOptions,
    handle_signals: bool,
) -> int | None:
    """Run the workers until all is done or a stop signal comes; the signal, if any."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    received: list[int] = []

    def on_signal(signum: int) -> None:
        received.append(signum)
        stop.set()

    if handle_signals:
        for sig in STOP_SIGNALS:
            loop.add_signal_handler(sig, on_signal, int(sig))
    pending = iter(todo)  # shared: each worker takes the next request in input order
    base_dir = options.input.resolve().parent

    async def all_workers() -> None:
        async with asyncio.TaskGroup() as group:
            for _ in range(min(options.concurrency, len(todo))):
                group.create_task(_worker(pending, client, output, progress, base_dir))

    work = asyncio.create_task(all_workers())
    stopper = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({work, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
        if not work.done():
            work.cancel()  # the TaskGroup cancels every worker, in-flight requests included
            await asyncio.wait({work})
        if handle_signals:
            for sig in STOP_SIGNALS:
                loop.remove_signal_handler(sig)
    if not work.cancelled():
        work.result()  # a worker's bug surfaces here, not as a silent short run
    return received[0] if received else None


async def _worker(
    pending: Iterator[BatchRequest],
    client: BatchClient,
    output: OutputFile,
    progress: Progress,
    base_dir: Path,
) -> None:
    for request in pending:
        outcome = await send_one(request, client, base_dir)
        # No await between the answer and the write: a cancellation cannot split them.
        output.write(output_line(request.custom_id, outcome))
        progress.finished(outcome.ok)


async def send_one(request: BatchRequest, client: BatchClient, base_dir: Path) -> Outcome:
    """One request: its media files read in a thread, then sent with retries."""
    try:
        content = await asyncio.to_thread(encode_body, request.body, base_dir)
    except MediaFileError as exc:
        return Outcome.local(exc.code, exc.message)
    return await client.post(request.url, content)
