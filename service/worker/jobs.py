"""From the wire job to what the model side takes: the conversation and its media.

PandaGPT sums every media item of a conversation into one soft token, so the
media are collected across all turns (in order) and the text goes to the
prompt builder as plain user/assistant turns.
"""

from __future__ import annotations

import torch

from service.worker.prompt import Conversation, Turn
from service.worker.protocol import ChatJob, MediaItem, SamplingSettings
from service.worker.sampling import Sampling


def conversation_of(job: ChatJob) -> Conversation:
    turns: list[Turn] = []
    for turn in job.turns:
        turns.append(Turn("user", turn.user.text))
        if turn.assistant is not None:
            turns.append(Turn("assistant", turn.assistant))
    return Conversation(turns=turns, system=job.system)


def media_of(job: ChatJob) -> list[MediaItem]:
    return [item for turn in job.turns for item in turn.user.media]


def feature_to_bytes(feature: torch.Tensor) -> bytes:
    """A feature as the cache stores it: float32 little-endian."""
    return feature.detach().to("cpu", torch.float32).contiguous().numpy().astype("<f4").tobytes()


def feature_from_bytes(data: bytes, dim: int) -> torch.Tensor | None:
    """The cached feature, or None when the entry has the wrong size (treated as a miss)."""
    if len(data) != dim * 4:
        return None
    return torch.frombuffer(bytearray(data), dtype=torch.float32)


def sampling_of(settings: SamplingSettings) -> Sampling:
    return Sampling.model_validate(settings.model_dump())
