"""Chat completion logic: validate, build the job, run it on the worker, and
shape the events into an OpenAI response or SSE stream.

Errors known before the first event (bad media, unknown model, busy worker)
become HTTP statuses; the first event is awaited before the response starts
for that reason. After that, a failure is one `data: {"error": ...}` event and
`data: [DONE]`. Leaving early (client gone, timeout) closes the worker stream,
which aborts the generation.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from functools import cached_property

from starlette.responses import JSONResponse, Response

from service import telemetry
from service.api.admission import Admission, admit
from service.api.chat_completion.conversation import build_job
from service.api.chat_completion.protocol import (
    ChatCompletionChoice,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatCompletionResponse,
    ChatCompletionStreamChoice,
    ChatCompletionTokenLogprob,
    ChatCompletionTopLogprob,
    ChoiceLogprobs,
    DeltaMessage,
    UsageInfo,
    completion_id,
    now,
)
from service.api.chat_completion.run import Run
from service.api.chat_completion.structured import OutputPlan, plan_output
from service.api.chat_completion.tool_replies import (
    ToolCallStream,
    reply_message,
    stream_choice,
)
from service.api.chat_completion.validation import check_context, check_request
from service.api.serving import OpenAIServing
from service.contract import (
    ChatDelta,
    ChatEvent,
    ChatJob,
    ChatUsage,
    SamplingSettings,
    ServedModel,
)
from service.errors import (
    DeadlineExceeded,
    error_body,
)
from service.http.streaming import EventStreamResponse, sse
from service.ratelimit.rate_limiter import estimate_tokens


class ChatServing(OpenAIServing):
    @cached_property
    def defaults(self) -> SamplingSettings:
        """The server's sampling defaults, under what a request sets."""
        return SamplingSettings(
            max_tokens=self.settings.default_max_tokens,
            temperature=self.settings.default_temperature,
            top_p=self.settings.default_top_p,
            top_k=self.settings.default_top_k,
        )

    async def create(self, request: ChatCompletionRequest, request_id: str) -> Response:
        started = await self.start(request, request_id)
        if request.stream:
            return EventStreamResponse(_stream(started, request))
        try:
            body = await _aggregate(started, request)
        except Exception:
            started.run.errored()
            raise
        finally:
            await started.run.close()
        return JSONResponse(body.model_dump(mode="json"))

    async def start(
        self,
        request: ChatCompletionRequest,
        request_id: str,
        *,
        endpoint: str = "chat",
        admitted: Admission | None = None,
        checked: tuple[OutputPlan, ServedModel] | None = None,
    ) -> Started:
        """Validate, admit, build the job and await its first event: every failure
        known up front is raised here (an HTTP status), before any reply starts.
        `admitted`: a place taken earlier (a background response's), else one is taken;
        `checked`: what `check` returned for this request, if it ran already."""
        try:
            plan, model = checked or await self.check(request)
        except BaseException:
            if admitted is not None:
                admitted.release()
            raise
        ticket = admitted or await self.admit(request, endpoint, model.max_model_len)
        timeout_s = self.settings.request_timeout_s
        deadline = asyncio.get_running_loop().time() + timeout_s
        run: Run | None = None
        try:
            async with asyncio.timeout_at(deadline):
                with telemetry.span("job.build"):
                    job = await build_job(
                        request,
                        model=model.id,
                        request_id=request_id,
                        fetcher=self.fetcher,
                        max_media_items=self.settings.max_media_items,
                        sampling=request.to_sampling(self.defaults, plan.constraint),
                        tools_text=plan.system_text,
                    )
            job.priority = ticket.priority
            ticket.grant.count_media(item.modality for item in job.media())
            events = aiter(self.worker.chat(job))
            run = Run(events, ticket, self.metrics, deadline, timeout_s, model.id, endpoint)
            first = await run.next()  # errors before streaming → HTTP status
        except TimeoutError as exc:
            ticket.release()
            raise DeadlineExceeded(f"Request timed out after {timeout_s:g}s.") from exc
        except BaseException:
            if run is not None:
                run.outcome = "error"
                await run.close()
            else:
                ticket.release()
            raise
        return Started(run, first, plan, model.id, job)

    async def check(self, request: ChatCompletionRequest) -> tuple[OutputPlan, ServedModel]:
        """Every check that needs no admission: the output plan and the resolved model."""
        check_request(request, self.settings)
        plan = plan_output(request)  # response_format, tools: the output's constraint
        model = await self.catalog.resolve(request.model)
        check_context(request, model.max_model_len)
        return plan, model

    async def admit(
        self, request: ChatCompletionRequest, endpoint: str, max_model_len: int
    ) -> Admission:
        """The key's limits, then a place in flight, queued by priority."""
        with telemetry.span("admission"):
            return await admit(
                self.rate_limiter,
                self.inflight,
                endpoint=endpoint,
                tokens=_reservation(request, self.settings.default_max_tokens, max_model_len),
                priority=request.priority,
                queue_timeout_s=self.settings.request_timeout_s,
            )


@dataclass
class Started:
    """A job running on the worker, its first event already in hand."""

    run: Run
    first: ChatEvent | None
    plan: OutputPlan
    model: str
    job: ChatJob


def _reservation(request: ChatCompletionRequest, default_max: int | None, context: int) -> int:
    """Tokens a request reserves from its key's budget until its usage is known."""
    chars, media = request.prompt_size()
    max_tokens = request.max_completion_tokens or request.max_tokens or default_max
    # Unset everywhere: the worker's reference default, 256 new tokens.
    max_tokens = min(max_tokens or 256, context)
    return estimate_tokens(chars, media, max_tokens, request.n)


async def _aggregate(started: Started, request: ChatCompletionRequest) -> ChatCompletionResponse:
    run, n, tools = started.run, request.n, started.plan.tools
    texts = [[] for _ in range(n)]  # type: list[list[str]]
    logprobs = [[] for _ in range(n)]  # type: list[list[ChatCompletionTokenLogprob]]
    finish: list[str | None] = [None] * n
    usage = UsageInfo()
    tokens = 0
    event = started.first
    while event is not None:
        if isinstance(event, ChatDelta) and event.index < n:
            texts[event.index].append(event.text)
            logprobs[event.index] += _openai_logprobs(event)
            tokens += event.token_count
            finish[event.index] = event.finish_reason or finish[event.index]
        elif isinstance(event, ChatUsage):
            usage = _usage(event)
        event = await run.next()
    run.outcome = "ok"
    if usage.total_tokens == 0 and tokens:
        usage = UsageInfo(completion_tokens=tokens, total_tokens=tokens)
    replies = [reply_message("".join(texts[i]), finish[i] or "stop", tools) for i in range(n)]
    choices = [
        ChatCompletionChoice(
            index=i,
            message=replies[i][0],
            finish_reason=replies[i][1],
            logprobs=ChoiceLogprobs(content=logprobs[i]) if request.logprobs else None,
        )
        for i in range(n)
    ]
    return ChatCompletionResponse(
        id=completion_id(), created=now(), model=started.model, choices=choices, usage=usage
    )


async def _stream(started: Started, request: ChatCompletionRequest) -> AsyncGenerator[str, None]:
    run, n, tools = started.run, request.n, started.plan.tools
    cid, created, model = completion_id(), now(), started.model
    include_usage = bool(request.stream_options and request.stream_options.include_usage)
    calls = ToolCallStream(tools, bool(request.logprobs)) if tools else None

    def chunk(choices: list[ChatCompletionStreamChoice], usage: UsageInfo | None = None) -> str:
        body = ChatCompletionChunk(
            id=cid, created=created, model=model, choices=choices, usage=usage
        ).model_dump(mode="json", exclude_none=True)
        for item in body["choices"]:  # OpenAI sends these as explicit nulls
            item.setdefault("finish_reason", None)
            item.setdefault("logprobs", None)
        return sse(json.dumps(body, separators=(",", ":")))

    text_chunk = TextChunk(cid, created, model)

    usage: UsageInfo | None = None
    try:
        for i in range(n):
            yield chunk([stream_choice(i, DeltaMessage(role="assistant", content=""))])
        event = started.first
        while event is not None:
            if isinstance(event, ChatDelta) and calls is not None:  # held until complete
                for held in calls.feed(event, _openai_logprobs(event)):
                    yield chunk([held])
            elif isinstance(event, ChatDelta):
                if event.logprobs:
                    # Tokens held back as a possible stop string still get their logprobs.
                    logprobs = ChoiceLogprobs(content=_openai_logprobs(event))
                    delta = DeltaMessage(content=event.text)
                    yield chunk([stream_choice(event.index, delta, logprobs=logprobs)])
                elif event.text:
                    yield text_chunk(event.index, event.text)
                if event.finish_reason is not None:
                    yield chunk([stream_choice(event.index, DeltaMessage(), event.finish_reason)])
            elif isinstance(event, ChatUsage):
                usage = _usage(event)
            event = await run.next()
        if include_usage:
            yield chunk([], usage or UsageInfo())
        run.outcome = "ok"
    except Exception as exc:
        run.stream_failed(exc)
        yield sse(json.dumps(error_body(exc)))
    finally:
        await run.close()
    yield sse("[DONE]")


class TextChunk:
    """The chunk of a plain text delta, the one a stream sends per token, written without
    building and dumping the pydantic chunk: the same bytes as `_stream`'s `chunk` gives
    for it (a unit test holds the two together), at a fraction of the CPU."""

    def __init__(self, cid: str, created: int, model: str) -> None:
        head = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model}
        self.head = json.dumps(head, separators=(",", ":"))[:-1]

    def __call__(self, index: int, text: str) -> str:
        return sse(
            f'{self.head},"choices":[{{"index":{index},"delta":{{"content":{json.dumps(text)}}},'
            '"finish_reason":null,"logprobs":null}]}'
        )


def _openai_logprobs(event: ChatDelta) -> list[ChatCompletionTokenLogprob]:
    def top(token: str, logprob: float) -> ChatCompletionTopLogprob:
        return ChatCompletionTopLogprob(token=token, logprob=logprob, bytes=list(token.encode()))

    return [
        ChatCompletionTokenLogprob(
            **top(lp.token, lp.logprob).model_dump(),
            top_logprobs=[top(t.token, t.logprob) for t in lp.top_logprobs],
        )
        for lp in event.logprobs or []
    ]


def _usage(event: ChatUsage) -> UsageInfo:
    return UsageInfo(
        prompt_tokens=event.prompt_tokens,
        completion_tokens=event.completion_tokens,
        total_tokens=event.prompt_tokens + event.completion_tokens,
    )
