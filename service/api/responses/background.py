"""`background: true`: the response is stored `queued` and answered at once; a task
on this gateway waits for a place at the key's priority (`in_progress`), runs it,
and stores the outcome. `GET` polls the record; `cancel` stops the task.

A gateway may die mid-run, so the running one marks the record alive every
`responses_heartbeat_s` (a `heartbeat` timestamp; the same beat looks for a
cancel request from another gateway). A reader that finds a `queued` or
`in_progress` record silent for `STALE_BEATS` beats reports it `failed`: never
stuck `in_progress`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from service.api.responses.events import Outcome, error_of
from service.api.responses.protocol import ResponseError, ResponseObject
from service.api.responses.serving import (
    ENDPOINT,
    Pending,
    ResponsesServing,
    collect,
    finish,
)
from service.api.responses.store import StoredResponse
from service.errors import ServiceError

_log = logging.getLogger(__name__)
STALE_BEATS = 5
_TERMINAL = ("completed", "incomplete", "failed", "cancelled")


def observed(record: StoredResponse, heartbeat_s: float) -> StoredResponse:
    """The record as a reader should see it: a run whose gateway fell silent has failed."""
    if record.status in _TERMINAL or record.heartbeat is None:
        return record
    if time.time() - record.heartbeat <= STALE_BEATS * heartbeat_s:
        return record
    response = dict(record.response)
    response["status"] = "failed"
    response["error"] = ResponseError(
        code="server_error",
        message="The gateway running this background response stopped before it finished.",
    ).model_dump()
    return record.model_copy(update={"response": response})


class BackgroundRuns:
    """The background responses this gateway runs, by id."""

    def __init__(self, serving: ResponsesServing, heartbeat_s: float) -> None:
        self.serving = serving
        self.heartbeat_s = heartbeat_s
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.closing = False  # the gateway is stopping: a cancelled run has failed

    async def start(self, pending: Pending, request_id: str) -> ResponseObject:
        run = _Run(self, pending, request_id)
        await run.write(pending.shell)
        task = asyncio.create_task(run.main())
        self.tasks[pending.shell.id] = task
        task.add_done_callback(lambda _: self.tasks.pop(pending.shell.id, None))
        return pending.shell

    async def cancel(self, response_id: str) -> None:
        """Stop it here, or ask its gateway to and wait until the record ends: the owner
        stores `cancelled` at its next beat, or, gone silent, reads as `failed` once
        STALE_BEATS have passed, so the caller always gets an ended response."""
        task = self.tasks.get(response_id)
        if task is not None:
            task.cancel()
            await asyncio.wait([task])
            return
        store = self.serving.store
        await store.request_cancel(response_id)
        deadline = time.monotonic() + (STALE_BEATS + 1) * self.heartbeat_s
        while time.monotonic() < deadline:
            record = await store.get(response_id)
            if record is None or observed(record, self.heartbeat_s).status in _TERMINAL:
                return
            await asyncio.sleep(min(0.2, self.heartbeat_s))

    async def aclose(self) -> None:
        """At shutdown: runs still going are stopped, and stored as failed."""
        self.closing = True
        tasks = list(self.tasks.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=5)


class _Run:
    def __init__(self, runs: BackgroundRuns, pending: Pending, request_id: str) -> None:
        self.runs = runs
        self.pending = pending
        self.request_id = request_id
        self.current = pending.shell
        self.done = False
        self.lock = asyncio.Lock()  # one write at a time: a beat never overwrites the end

    async def write(self, response: ResponseObject, *, final: bool = False) -> None:
        async with self.lock:
            if self.done:
                return
            self.current = response
            self.done = final
            record = StoredResponse(
                response=response.model_dump(mode="json"),
                owner=self.pending.owner,
                input_items=[],
                heartbeat=None if final else time.time(),
            )
            await self.runs.serving.store.put(record)

    async def main(self) -> None:
        beat = asyncio.create_task(self._beat(asyncio.current_task()))
        try:
            await self._serve()
        except asyncio.CancelledError:
            if self.runs.closing:
                stopped = "The gateway running this background response stopped."
                error = ResponseError(code="server_error", message=stopped)
                await self._end(Outcome([], "failed", error=error))
            else:
                await self._end(Outcome([], "cancelled"))
        except Exception as exc:
            if not isinstance(exc, ServiceError):
                _log.exception("background response %s failed", self.pending.shell.id)
            error = error_of(self.pending.rename(exc) if isinstance(exc, ServiceError) else exc)
            await self._end(Outcome([], "failed", error=error))
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat

    async def _serve(self) -> None:
        chat, pending = self.runs.serving.chat, self.pending
        request = pending.translation.chat
        max_model_len = pending.checked[1].max_model_len
        ticket = await chat.admit(request, ENDPOINT, max_model_len)  # queued here
        try:
            await self.write(self.current.model_copy(update={"status": "in_progress"}))
        except BaseException:
            ticket.release()
            raise
        started = await chat.start(
            request, self.request_id, endpoint=ENDPOINT, admitted=ticket, checked=pending.checked
        )
        outcome, usage = await collect(started, pending.message_id)
        final = finish(self.current, outcome, usage)
        async with self.lock:  # the stored conversation, for previous_response_id
            self.done = True
            await self.runs.serving.save(pending, final, started)

    async def _end(self, outcome: Outcome) -> None:
        try:
            await self.write(finish(self.current, outcome, None), final=True)
        except ServiceError:
            _log.error("could not store the end of background response %s", self.current.id)

    async def _beat(self, task: asyncio.Task[None] | None) -> None:
        store, rid = self.runs.serving.store, self.pending.shell.id
        while True:
            await asyncio.sleep(self.runs.heartbeat_s)
            try:
                if await store.cancel_requested(rid) and task is not None:
                    task.cancel()
                    return
                await self.write(self.current)
            except ServiceError:  # the store is down: the next beat tries again
                _log.warning("heartbeat of background response %s not stored", rid)
