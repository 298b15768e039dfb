"""Responses logic: check the request, rebuild the conversation (`previous_response_id`
from the store), translate it to a chat request, run it through `ChatServing.start`
(limits, tools, media, admission, the worker), and shape the result as a response
object or the Responses event stream; store it when `store` is true.

Failures known before the first event are HTTP statuses (as chat's), their
parameter renamed to this API's. A failure after the stream began is a
`response.failed` event. `background` runs are in `background.py`.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any

from starlette.responses import JSONResponse, Response

from service import telemetry
from service.api.chat_completion.serving import ChatServing, Started
from service.api.chat_completion.structured import OutputPlan, ToolPlan
from service.api.responses.events import EventWriter, Outcome, error_of, outcome_of
from service.api.responses.items import Translation, check, rename_param, translate
from service.api.responses.protocol import (
    FunctionTool,
    OutputMessage,
    ResponseObject,
    ResponsesRequest,
    ResponseUsage,
    Status,
    item_id,
    now,
    response_id,
)
from service.api.responses.store import ResponseStore, StoredResponse
from service.contract import ChatDelta, ChatEvent, ChatUsage, ServedModel
from service.errors import InvalidRequest, NotFound, ServiceError
from service.http.streaming import EventStreamResponse
from service.ratelimit.rate_limiter import current_key

ENDPOINT = "responses"  # the label of this endpoint's metrics


def owner() -> str:
    """Who may see a stored response: the API key that created it ("" with auth off)."""
    key = current_key.get()
    return key.sha256 if key is not None else ""


@dataclass
class Pending:
    """One accepted request: its translation, the response it will become, its owner."""

    request: ResponsesRequest
    translation: Translation
    prior: list[dict[str, Any]]
    shell: ResponseObject
    owner: str
    checked: tuple[OutputPlan, ServedModel]  # ChatServing.check's answer
    message_id: str = field(default_factory=lambda: item_id("msg"))

    def rename(self, exc: ServiceError) -> ServiceError:
        return rename(exc, self.translation)


def rename(exc: ServiceError, translation: Translation) -> ServiceError:
    """A chat error, its parameter named as this API names it."""
    exc.param = rename_param(exc.param, translation.origins)
    return exc


class ResponsesServing:
    def __init__(self, chat: ChatServing, store: ResponseStore) -> None:
        self.chat = chat
        self.store = store

    async def accept(self, request: ResponsesRequest) -> Pending:
        """Every check that needs no worker: a 400/404 here costs nothing."""
        check(request)
        prior: list[dict[str, Any]] = []
        if request.previous_response_id is not None:
            prior = await self.previous(request.previous_response_id)
        translation = translate(request, prior)
        try:  # the chat checks (limits, tools, model): a background run starts only if valid
            checked = await self.chat.check(translation.chat)
        except ServiceError as exc:
            raise rename(exc, translation) from None
        model = checked[1]
        translation.chat.model = model.id
        shell = _shell(request, response_id(), model.id)
        return Pending(request, translation, prior, shell, owner(), checked)

    async def create(self, request: ResponsesRequest, request_id: str) -> Response:
        pending = await self.accept(request)
        try:
            started = await self.chat.start(
                pending.translation.chat, request_id, endpoint=ENDPOINT, checked=pending.checked
            )
        except ServiceError as exc:
            raise pending.rename(exc) from None
        if request.stream:
            return EventStreamResponse(self._stream(pending, started))
        outcome, usage = await collect(started, pending.message_id)
        final = finish(pending.shell, outcome, usage)
        await self.save(pending, final, started)
        return JSONResponse(final.model_dump(mode="json"))

    async def previous(self, previous_id: str) -> list[dict[str, Any]]:
        record = await self.store.get(previous_id)
        if record is None or record.owner != owner():
            raise NotFound(
                f"Previous response with id '{previous_id[:80]}' not found.",
                param="previous_response_id",
                code="previous_response_not_found",
            )
        if record.status not in ("completed", "incomplete"):
            raise InvalidRequest(
                f"Previous response '{previous_id[:80]}' is {record.status}; only a finished"
                " response can be continued.",
                param="previous_response_id",
            )
        return record.conversation

    async def save(self, pending: Pending, final: ResponseObject, started: Started | None) -> None:
        """Store the response and the conversation it closes (`store: true`)."""
        if not pending.request.store:
            return
        items = pending.translation.stored_items(started.job) if started else []
        output = [item.model_dump(mode="json") for item in final.output]
        record = StoredResponse(
            response=final.model_dump(mode="json"),
            owner=pending.owner,
            input_items=items,
            conversation=[*pending.prior, *items, *output],
        )
        with telemetry.span("responses.store"):
            await self.store.put(record)

    async def _stream(self, pending: Pending, started: Started) -> AsyncGenerator[str, None]:
        writer, run, tools = EventWriter(), started.run, started.plan.tools
        message_id, shell = pending.message_id, pending.shell
        yield writer.lifecycle("response.created", shell)
        yield writer.lifecycle("response.in_progress", shell)
        reply, opened = FirstChoice(), False
        streams = tools is None  # plain text streams as it comes; a tool call when whole
        try:
            event = started.first
            while event is not None:
                if reply.add(event) and streams and isinstance(event, ChatDelta) and event.text:
                    if not opened:
                        for line in writer.open_message(0, message_id):
                            yield line
                        opened = True
                    yield writer.text_delta(0, message_id, event.text)
                event = await run.next()
            run.outcome = "ok"
            outcome = reply.outcome(tools, message_id)
        except Exception as exc:
            run.stream_failed(exc)
            outcome = Outcome([], "failed", error=error_of(exc))
        finally:
            await run.close()
        for index, item in enumerate(outcome.items):
            if isinstance(item, OutputMessage):
                if not opened:
                    for line in writer.open_message(index, item.id):
                        yield line
                    if item.content[0].text:
                        yield writer.text_delta(index, item.id, item.content[0].text)
                for line in writer.close_message(index, item):
                    yield line
            else:
                for line in writer.function_call(index, item):
                    yield line
        final = finish(shell, outcome, reply.usage)
        try:
            await self.save(pending, final, started)
        except ServiceError as exc:
            error = error_of(exc)
            yield writer.emit("error", code=error.code, message=error.message, param=None)
            return
        kind = {"completed": "response.completed", "incomplete": "response.incomplete"}
        yield writer.lifecycle(kind.get(final.status, "response.failed"), final)


async def collect(started: Started, message_id: str) -> tuple[Outcome, ResponseUsage]:
    """Read a run to its end (non-streaming)."""
    run, reply = started.run, FirstChoice()
    try:
        event = started.first
        while event is not None:
            reply.add(event)
            event = await run.next()
        run.outcome = "ok"
    except BaseException:
        run.errored()
        raise
    finally:
        await run.close()
    return reply.outcome(started.plan.tools, message_id), reply.usage


class FirstChoice:
    """The reply as a response keeps it: the first choice's text and finish reason, and
    the usage, gathered as the events arrive."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.finish_reason: str | None = None
        self.usage = ResponseUsage()

    def add(self, event: ChatEvent) -> bool:
        """Take in one event; true if it was a delta of the first choice."""
        if isinstance(event, ChatDelta) and event.index == 0:
            self.texts.append(event.text)
            self.finish_reason = event.finish_reason or self.finish_reason
            return True
        if isinstance(event, ChatUsage):
            self.usage = usage_of(event)
        return False

    def outcome(self, tools: ToolPlan | None, message_id: str) -> Outcome:
        return outcome_of("".join(self.texts), self.finish_reason, tools, message_id)


def usage_of(event: ChatUsage) -> ResponseUsage:
    return ResponseUsage(
        input_tokens=event.prompt_tokens,
        output_tokens=event.completion_tokens,
        total_tokens=event.prompt_tokens + event.completion_tokens,
    )


def finish(shell: ResponseObject, outcome: Outcome, usage: ResponseUsage | None) -> ResponseObject:
    return shell.model_copy(
        update={
            "status": outcome.status,
            "output": outcome.items,
            "usage": usage,
            "incomplete_details": outcome.incomplete,
            "error": outcome.error,
            "completed_at": now() if outcome.status == "completed" else None,
        }
    )


def _shell(request: ResponsesRequest, rid: str, model: str) -> ResponseObject:
    """The response as it begins (`in_progress`, no output), echoing the request."""
    choice: str | dict[str, Any] = "auto"
    if isinstance(request.tool_choice, str):
        choice = request.tool_choice
    elif request.tool_choice is not None:
        choice = request.tool_choice.model_dump(mode="json")
    form = request.text.format if request.text and request.text.format else None
    status: Status = "queued" if request.background else "in_progress"
    return ResponseObject(
        id=rid,
        created_at=now(),
        status=status,
        background=bool(request.background),
        instructions=request.instructions,
        max_output_tokens=request.max_output_tokens,
        max_tool_calls=request.max_tool_calls,
        metadata=dict(request.metadata or {}),
        model=model,
        parallel_tool_calls=request.parallel_tool_calls is not False,
        previous_response_id=request.previous_response_id,
        store=request.store is not False,
        temperature=request.temperature,
        text={"format": form.model_dump(mode="json", by_alias=True, exclude_none=True)}
        if form
        else {"format": {"type": "text"}},
        tool_choice=choice,
        tools=[
            t.model_dump(mode="json", exclude_none=True)
            for t in request.tools or []
            if isinstance(t, FunctionTool)
        ],
        top_p=request.top_p,
        user=request.user,
    )


async def owned(store: ResponseStore, rid: str) -> StoredResponse:
    """The stored response, if the caller's key created it; a 404 otherwise (another
    key's response is indistinguishable from none)."""
    record = await store.get(rid)
    if record is None or record.owner != owner():
        raise NotFound(f"Response with id '{rid[:80]}' not found.", param="response_id")
    return record
