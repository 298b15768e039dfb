"""OpenAI messages → the worker's `ChatJob` (system text, turns, fetched media).

PandaGPT's prompt is a strict Human/Assistant alternation, so: system and
developer messages join into one system text; consecutive user messages join
into one turn; an assistant message answers the turn before it; the last
message must be a user's (or a tool's). Tool calls and results become text
(the convention of `structured.py`): an assistant's calls are appended to its
answer as `<tool_call>{"name": ..., "arguments": ...}</tool_call>`, and a
`role: "tool"` message is human-side text,
`<tool_response>{"name": ..., "content": ...}</tool_response>`. Media may sit
in any user message; all of it is fetched concurrently, bounded by
`max_media_items`.
"""

from __future__ import annotations

import json

from service.api.chat_completion.protocol import (
    AssistantMessage,
    ChatCompletionRequest,
    DeveloperMessage,
    SystemMessage,
    TextPart,
    ToolMessage,
    UserMessage,
)
from service.api.chat_completion.structured import render_call
from service.api.chat_completion.validation import check_media_count
from service.api.media.fetch import MediaFetcher
from service.api.media.parts import MediaRef, field_of, load_all
from service.contract import ChatJob, ChatTurn, SamplingSettings, UserTurn
from service.errors import InvalidRequest


def _text_of(content: str | list[TextPart] | None) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "\n".join(part.text for part in content)


class _PendingTurn:
    def __init__(self) -> None:
        self.texts: list[str] = []
        self.media: list[MediaRef] = []
        self.answer: list[str] = []


async def build_job(
    request: ChatCompletionRequest,
    *,
    model: str,
    request_id: str,
    fetcher: MediaFetcher,
    max_media_items: int,
    sampling: SamplingSettings,
    tools_text: str | None = None,
) -> ChatJob:
    """`tools_text`: the tools and their convention, appended to the system text."""
    system: list[str] = []
    turns: list[_PendingTurn] = []
    n_media = 0
    called: dict[str, str] = {}  # tool call id -> function name, from assistant messages
    for i, message in enumerate(request.messages):
        if isinstance(message, SystemMessage | DeveloperMessage):
            system.append(_text_of(message.content))
        elif isinstance(message, AssistantMessage):
            if not turns:
                raise InvalidRequest(
                    "An assistant message must follow a user message.", param=f"messages.{i}"
                )
            texts = [_text_of(message.content)] if message.content else []
            for call in message.tool_calls or []:
                called[call.id] = call.function.name
                texts.append(render_call(call.function.name, call.function.arguments))
            turns[-1].answer.append("\n".join(texts))
        elif isinstance(message, ToolMessage):
            if message.tool_call_id not in called:
                raise InvalidRequest(
                    "tool_call_id matches no tool call of an earlier assistant message.",
                    param=f"messages.{i}.tool_call_id",
                )
            if turns[-1].answer:
                turns.append(_PendingTurn())
            body = {"name": called[message.tool_call_id], "content": _text_of(message.content)}
            turns[-1].texts.append(f"<tool_response>{json.dumps(body)}</tool_response>")
        elif isinstance(message, UserMessage):
            if not turns or turns[-1].answer:
                turns.append(_PendingTurn())
            turn = turns[-1]
            if isinstance(message.content, str):
                turn.texts.append(message.content)
                continue
            for j, part in enumerate(message.content):
                param = f"messages.{i}.content.{j}"
                if isinstance(part, TextPart):
                    turn.texts.append(part.text)
                    continue
                n_media += 1
                check_media_count(n_media, max_media_items, param)
                turn.media.append(MediaRef.of_part(part, f"{param}.{field_of(part)}"))
    if not turns or turns[-1].answer:
        raise InvalidRequest("The last message must be from the user.", param="messages")
    items = iter(await load_all([ref for t in turns for ref in t.media], fetcher))
    media = [[next(items) for _ in t.media] for t in turns]
    return ChatJob(
        request_id=request_id,
        model=model,
        system="\n".join([*system, tools_text] if tools_text else system) or None,
        turns=[
            ChatTurn(
                user=UserTurn(text="\n".join(t.texts), media=items),
                assistant="\n".join(t.answer) if t.answer else None,
            )
            for t, items in zip(turns, media, strict=True)
        ],
        sampling=sampling,
    )
