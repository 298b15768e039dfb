"""OpenAI messages → the worker's `ChatJob` (system text, turns, fetched media).

PandaGPT's prompt is a strict Human/Assistant alternation, so: system and
developer messages join into one system text; consecutive user messages join
into one turn; an assistant message answers the turn before it; the last
message must be a user's. Media may sit in any user message; all of it is
fetched concurrently, bounded by `max_media_items`.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass

from service.api.chat_completion.protocol import (
    PART_MODALITY,
    AssistantMessage,
    ChatCompletionRequest,
    DeveloperMessage,
    InputAudioPart,
    SystemMessage,
    TextPart,
    UserMessage,
)
from service.api.media_fetch import MediaFetcher
from service.errors import InvalidRequest
from service.worker.protocol import ChatJob, MediaItem, SamplingSettings, Turn, UserTurn


def _text_of(content: str | list[TextPart] | None) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "\n".join(part.text for part in content)


_INLINE_HASH_BYTES = 1 << 20


@dataclass(frozen=True)
class _MediaRef:
    modality: str
    param: str
    url: str | None = None  # a URL to fetch, or
    b64: str | None = None  # inline base64 (input_audio)
    fmt: str | None = None


class _PendingTurn:
    def __init__(self) -> None:
        self.texts: list[str] = []
        self.media: list[_MediaRef] = []
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
                modality = PART_MODALITY[part.type]
                if isinstance(part, InputAudioPart):
                    ref = _MediaRef(
                        modality,
                        f"{param}.input_audio.data",
                        b64=part.input_audio.data,
                        fmt=part.input_audio.format,
                    )
                else:
                    url = getattr(part, part.type).url
                    ref = _MediaRef(modality, f"{param}.{part.type}.url", url=url)
                turn.media.append(ref)
    if not turns or turns[-1].answer:
        raise InvalidRequest("The last message must be from the user.", param="messages")
    media = await _gather_turn_media(turns, fetcher)
    return ChatJob(
        request_id=request_id,
        model=model,
        system="\n".join(system) if system else None,
        turns=[
            Turn(
                user=UserTurn(text="\n".join(t.texts), media=items),
                assistant="\n".join(t.answer) if t.answer else None,
            )
            for t, items in zip(turns, media, strict=True)
        ],
        sampling=sampling,
    )


async def _load(ref: _MediaRef, fetcher: MediaFetcher) -> MediaItem:
    if ref.b64 is not None:
        data = fetcher.decode_base64(ref.b64, ref.modality, param=ref.param, fmt=ref.fmt)
    else:
        assert ref.url is not None
        data = await fetcher.fetch(ref.url, ref.modality, param=ref.param)
    return MediaItem(
        modality=ref.modality,  # type: ignore[arg-type]  # PART_MODALITY values are Modality
        data=data,
        sha256=await _sha256(data),
    )


async def _sha256(data: bytes) -> str:
    # Hashing tens of MiB takes tens of ms: keep big items off the event loop.
    if len(data) > _INLINE_HASH_BYTES:
        return await asyncio.to_thread(lambda: hashlib.sha256(data).hexdigest())
    return hashlib.sha256(data).hexdigest()


async def _gather_turn_media(
    turns: list[_PendingTurn], fetcher: MediaFetcher
) -> list[list[MediaItem]]:
    """Fetch every item at once; the first failure cancels the rest and is raised."""
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [[group.create_task(_load(ref, fetcher)) for ref in t.media] for t in turns]
    except BaseExceptionGroup as group_error:
        raise group_error.exceptions[0] from None
    return [[task.result() for task in turn_tasks] for turn_tasks in tasks]
