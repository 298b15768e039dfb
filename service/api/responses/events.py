"""A finished reply → Responses output items, and a worker stream → the Responses
event sequence that the `openai` client's `responses.stream()` helper assembles:

```
response.created · response.in_progress
  per item:  response.output_item.added
    message:       response.content_part.added · response.output_text.delta …
                   response.output_text.done · response.content_part.done
    function_call: response.function_call_arguments.delta · …arguments.done
             response.output_item.done
response.completed | response.incomplete | response.failed
```

Every event carries a `sequence_number` (0, 1, …) and goes out as
`event: <type>` + `data: <json>`. Plain text streams token by token; with tools,
the reply is held until it ends (a call is only known once its JSON is
complete, as in the chat stream), then each item goes out whole.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from service.api.chat_completion.structured import ToolPlan
from service.api.chat_completion.tool_replies import reply_message
from service.api.responses.protocol import (
    FunctionCallOutput,
    IncompleteDetails,
    OutputItem,
    OutputMessage,
    OutputText,
    ResponseError,
    ResponseObject,
    Status,
    item_id,
)
from service.errors import ServiceError, error_spec


@dataclass
class Outcome:
    items: list[OutputItem]
    status: Status
    incomplete: IncompleteDetails | None = None
    error: ResponseError | None = None


def outcome_of(text: str, finish: str | None, tools: ToolPlan | None, message_id: str) -> Outcome:
    """The output items of a finished reply, and the response's status."""
    if finish in ("abort", "error"):
        error = ResponseError(code="server_error", message="Generation stopped in the worker.")
        return Outcome([], "failed", error=error)
    message, reason = reply_message(text, finish or "stop", tools)
    cut = reason == "length"
    items: list[OutputItem] = []
    if message.content is not None or not message.tool_calls:
        items.append(
            OutputMessage(
                id=message_id,
                status="incomplete" if cut else "completed",
                content=[OutputText(text=message.content or "")],
            )
        )
    for call in message.tool_calls or []:
        items.append(
            FunctionCallOutput(
                id=item_id("fc"),
                call_id=call.id,
                name=call.function.name,
                arguments=call.function.arguments,
            )
        )
    if cut:
        return Outcome(items, "incomplete", IncompleteDetails(reason="max_output_tokens"))
    return Outcome(items, "completed")


def error_of(exc: BaseException) -> ResponseError:
    """A failure as the response's `error` (OpenAI's codes: a client fault's own, else
    `server_error`)."""
    spec = error_spec(exc)
    if isinstance(exc, ServiceError) and exc.status < 500 and spec.code:
        return ResponseError(code=spec.code, message=spec.message)
    return ResponseError(code="server_error", message=spec.message)


class EventWriter:
    """Numbers the events of one stream and writes them as SSE."""

    def __init__(self) -> None:
        self.sequence = 0

    def emit(self, kind: str, **fields: Any) -> str:
        body = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        data = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
        return f"event: {kind}\ndata: {data}\n\n"

    def lifecycle(self, kind: str, response: ResponseObject) -> str:
        return self.emit(kind, response=response.model_dump(mode="json"))

    def open_message(self, index: int, message_id: str) -> list[str]:
        """A message item, and its one output_text part, begun empty."""
        item = OutputMessage(id=message_id, status="in_progress")
        part = OutputText(text="").model_dump(mode="json")
        return [
            self.emit("response.output_item.added", output_index=index, item=_json(item)),
            self.emit(
                "response.content_part.added",
                item_id=message_id,
                output_index=index,
                content_index=0,
                part=part,
            ),
        ]

    def text_delta(self, index: int, message_id: str, delta: str) -> str:
        return self.emit(
            "response.output_text.delta",
            item_id=message_id,
            output_index=index,
            content_index=0,
            delta=delta,
            logprobs=[],
        )

    def close_message(self, index: int, message: OutputMessage) -> list[str]:
        part = message.content[0]
        where = {"item_id": message.id, "output_index": index, "content_index": 0}
        return [
            self.emit("response.output_text.done", **where, text=part.text, logprobs=[]),
            self.emit("response.content_part.done", **where, part=_json(part)),
            self.emit("response.output_item.done", output_index=index, item=_json(message)),
        ]

    def function_call(self, index: int, call: FunctionCallOutput) -> list[str]:
        """A call goes out whole: its arguments in one delta."""
        begun = call.model_copy(update={"arguments": "", "status": "in_progress"})
        where = {"item_id": call.id, "output_index": index}
        return [
            self.emit("response.output_item.added", output_index=index, item=_json(begun)),
            self.emit("response.function_call_arguments.delta", **where, delta=call.arguments),
            self.emit(
                "response.function_call_arguments.done",
                **where,
                name=call.name,
                arguments=call.arguments,
            ),
            self.emit("response.output_item.done", output_index=index, item=_json(call)),
        ]


def _json(model: Any) -> dict[str, Any]:
    data: dict[str, Any] = model.model_dump(mode="json")
    return data
