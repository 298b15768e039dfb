"""A finished choice's text → OpenAI's reply shape when the request has tools:
`message.tool_calls` (content null) and finish_reason "tool_calls", or, in a
stream, the `delta.tool_calls` chunks the `openai` client assembles.

A call is only known once its JSON is complete, so in a stream each choice's
text is held until the choice finishes; then come its content (if any), one
chunk with all its calls (id, type, name and the whole arguments string, as
OpenAI's first and last fragments together), and the finish chunk.
"""

from __future__ import annotations

from service.api.chat_completion.protocol import (
    ChatCompletionStreamChoice,
    ChatCompletionTokenLogprob,
    ChatMessage,
    ChoiceLogprobs,
    DeltaFunctionCall,
    DeltaMessage,
    DeltaToolCall,
)
from service.api.chat_completion.structured import ToolPlan, tool_calls_of
from service.contract import ChatDelta


def reply_message(text: str, finish: str, plan: ToolPlan | None) -> tuple[ChatMessage, str]:
    """The choice's message and finish_reason."""
    if plan is None or finish != "stop":
        return ChatMessage(content=text), finish
    content, calls = tool_calls_of(text, plan)
    if not calls:
        return ChatMessage(content=content), finish
    return ChatMessage(content=content, tool_calls=calls), "tool_calls"


class ToolCallStream:
    """Holds each choice's text and logprobs until it finishes."""

    def __init__(self, plan: ToolPlan, with_logprobs: bool) -> None:
        self.plan = plan
        self.with_logprobs = with_logprobs
        self.texts: dict[int, list[str]] = {}
        self.logprobs: dict[int, list[ChatCompletionTokenLogprob]] = {}

    def feed(
        self, event: ChatDelta, logprobs: list[ChatCompletionTokenLogprob]
    ) -> list[ChatCompletionStreamChoice]:
        """The chunks' choices this event releases (none until the choice finishes)."""
        self.texts.setdefault(event.index, []).append(event.text)
        self.logprobs.setdefault(event.index, []).extend(logprobs)
        if event.finish_reason is None:
            return []
        text = "".join(self.texts.pop(event.index))
        held = self.logprobs.pop(event.index)
        message, finish = reply_message(text, event.finish_reason, self.plan)
        out: list[ChatCompletionStreamChoice] = []
        first_logprobs = ChoiceLogprobs(content=held) if self.with_logprobs and held else None
        if message.content:
            delta = DeltaMessage(content=message.content)
            out.append(stream_choice(event.index, delta, logprobs=first_logprobs))
            first_logprobs = None
        if message.tool_calls:
            calls = [
                DeltaToolCall(
                    index=i,
                    id=call.id,
                    type="function",
                    function=DeltaFunctionCall(
                        name=call.function.name, arguments=call.function.arguments
                    ),
                )
                for i, call in enumerate(message.tool_calls)
            ]
            delta = DeltaMessage(tool_calls=calls)
            out.append(stream_choice(event.index, delta, logprobs=first_logprobs))
        out.append(stream_choice(event.index, DeltaMessage(), finish=finish))
        return out


def stream_choice(
    index: int,
    delta: DeltaMessage,
    finish: str | None = None,
    logprobs: ChoiceLogprobs | None = None,
) -> ChatCompletionStreamChoice:
    return ChatCompletionStreamChoice(
        index=index, delta=delta, finish_reason=finish, logprobs=logprobs
    )
