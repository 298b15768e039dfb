"""OpenAI messages → the worker's `ChatJob` (system text, turns, fetched media).

PandaGPT's prompt is a strict Human/Assistant alternation, so: system and
developer messages join into one system text; consecutive user messages join
into one turn; an assistant message answers the turn before it; the last
message must be a user's. Media may sit in any user message; all of it is
fetched concurrently, bounded by `max_media_items`.
"""

from __future__ import annotations

from service.api.chat_completion.protocol import (
    AssistantMessage,
    ChatCompletionRequest,
    DeveloperMessage,
    SystemMessage,
    TextPart,
    UserMessage,
)
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
) -> ChatJob:
    system: list[str] = []
    turns: list[_PendingTurn] = []
    n_media = 0
    for i, message in enumerate(request.messages):
        if isinstance(message, SystemMessage | DeveloperMessage):
            system.append(_text_of(message.content))
        elif isinstance(message, AssistantMessage):
            if not turns:
                raise InvalidRequest(
                    "An assistant message must follow a user message.", param=f"messages.{i}"
                )
            turns[-1].answer.append(_text_of(message.content))
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
                if n_media > max_media_items:
                    raise InvalidRequest(
                        f"At most {max_media_items} media items per request.", param=param
                    )
                turn.media.append(MediaRef.of_part(part, f"{param}.{field_of(part)}"))
    if not turns or turns[-1].answer:
        raise InvalidRequest("The last message must be from the user.", param="messages")
    items = iter(await load_all([ref for t in turns for ref in t.media], fetcher))
    media = [[next(items) for _ in t.media] for t in turns]
    return ChatJob(
        request_id=request_id,
        model=model,
        system="\n".join(system) if system else None,
        turns=[
            ChatTurn(
                user=UserTurn(text="\n".join(t.texts), media=items),
                assistant="\n".join(t.answer) if t.answer else None,
            )
            for t, items in zip(turns, media, strict=True)
        ],
        sampling=sampling,
    )
