"""The media parts of a request (chat messages or embedding inputs) → `MediaItem`s.

Chat and embeddings take the same content parts (`image_url`, `input_audio`,
`audio_url`, …). Each part becomes a `MediaRef` naming the parameter to blame
on failure; `load_all` then fetches or decodes every item at once, checks its
type and hashes it, and raises the first failure (cancelling the rest).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from service.api.chat_completion.protocol import PART_MODALITY, InputAudioPart, StoredMediaPart
from service.api.media.fetch import MediaFetcher
from service.contract import MediaItem

# Hashing tens of MiB takes tens of ms: items above this are hashed in a thread.
_INLINE_HASH_BYTES = 1 << 20


@dataclass(frozen=True)
class MediaRef:
    modality: str
    param: str  # the request parameter a failure names
    url: str | None = None  # a URL to fetch, or
    b64: str | None = None  # inline base64 (input_audio)
    fmt: str | None = None  # input_audio's declared format
    sha256: str | None = None  # a stored turn's item: no bytes, the worker's cache has it

    @classmethod
    def of_part(cls, part: object, param: str) -> MediaRef:
        """A media content part (any part type but `text`)."""
        if isinstance(part, StoredMediaPart):
            return cls(part.modality, param, sha256=part.sha256)
        part_type = str(getattr(part, "type", ""))
        modality = PART_MODALITY[part_type]
        if isinstance(part, InputAudioPart):
            return cls(modality, param, b64=part.input_audio.data, fmt=part.input_audio.format)
        return cls(modality, param, url=getattr(part, part_type).url)


def field_of(part: object) -> str:
    """Where a part keeps its media (`image_url.url`, `input_audio.data`): the tail
    of the parameter a chat error names."""
    if isinstance(part, InputAudioPart):
        return "input_audio.data"
    if isinstance(part, StoredMediaPart):
        return "sha256"
    return f"{getattr(part, 'type', '')}.url"


async def load_all(refs: Sequence[MediaRef], fetcher: MediaFetcher) -> list[MediaItem]:
    """Every item at once, in order; the first failure cancels the rest and is raised."""
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(_load(ref, fetcher)) for ref in refs]
    except BaseExceptionGroup as group_error:
        raise group_error.exceptions[0] from None
    return [task.result() for task in tasks]


async def _load(ref: MediaRef, fetcher: MediaFetcher) -> MediaItem:
    if ref.sha256 is not None:  # a reference: empty bytes (see `MediaItem`)
        return MediaItem(modality=ref.modality, data=b"", sha256=ref.sha256)  # type: ignore[arg-type]
    if ref.b64 is not None:
        data = await fetcher.decode_base64(ref.b64, ref.modality, param=ref.param, fmt=ref.fmt)
    else:
        assert ref.url is not None
        data = await fetcher.fetch(ref.url, ref.modality, param=ref.param)
    return MediaItem(
        modality=ref.modality,  # type: ignore[arg-type]  # PART_MODALITY values are Modality
        data=data,
        sha256=await _sha256(data),
    )


async def _sha256(data: bytes) -> str:
    if len(data) > _INLINE_HASH_BYTES:
        return await asyncio.to_thread(lambda: hashlib.sha256(data).hexdigest())
    return hashlib.sha256(data).hexdigest()
