"""Job frames: how jobs cross the internal API (media as raw bytes, not base64)."""

from __future__ import annotations

import os

import pytest

from service.contract import (
    ChatJob,
    ChatTurn,
    EmbedJob,
    MediaItem,
    UserTurn,
    job_frame,
    media_items,
    read_job_frame,
)


def item(modality: str, size: int) -> MediaItem:
    return MediaItem(modality=modality, data=os.urandom(size), sha256=f"{size:064d}")  # type: ignore[arg-type]


def chat_job() -> ChatJob:
    first = UserTurn(text="two items", media=[item("image", 1000), item("audio", 0)])
    second = UserTurn(text="one more", media=[item("video", 70_000)])
    turns = [ChatTurn(user=first, assistant="ok"), ChatTurn(user=second)]
    return ChatJob(request_id="r", model="m", system="be brief", turns=turns)


def test_chat_and_embed_jobs_survive_a_frame() -> None:
    job = chat_job()
    assert read_job_frame(b"".join(job_frame(job)), ChatJob) == job
    embed = EmbedJob(request_id="e", model="m", inputs=["text", item("image", 5), "more"])
    assert read_job_frame(b"".join(job_frame(embed)), EmbedJob) == embed


def test_the_frame_carries_the_media_raw_and_uncopied() -> None:
    job = chat_job()
    head, *blobs = job_frame(job)
    assert all(blob is media.data for blob, media in zip(blobs, media_items(job), strict=True))
    assert b"two items" in head and len(head) < 2000  # no base64 of the media in the header


@pytest.mark.parametrize(
    "cut",
    [
        lambda f: b"",
        lambda f: b"XXXX" + f[4:],  # not a frame
        lambda f: f[:6],  # cut inside the header length
        lambda f: f[:-1],  # one media byte short
        lambda f: f + b"x",  # one byte too many
        lambda f: f[:8] + b"[" + f[9:],  # a header that is not a job
    ],
)
def test_malformed_frames_are_value_errors(cut) -> None:
    frame = b"".join(job_frame(chat_job()))
    with pytest.raises(ValueError):
        read_job_frame(cut(frame), ChatJob)
