"""The benchmark's requests: a seeded mix of PandaGPT chats over the fixture media.

Each request is one conversation, expressed twice from the same data: as
OpenAI chat messages for the service and as (question, turns, media) for the
reference. Kinds: image, audio, video, image+audio, multi-turn (an image,
two earlier turns) and text-only.

Media bytes are made unique per request (`unique_bytes`) so that the service's
embedding cache never hits during the load runs: both paths decode and encode
every item, and the cache is measured on its own (bench/cache_and_batching.py). The change
is a JPEG comment segment, a WAV trailing chunk or an MP4 `free` box, so the
decoded pixels and samples, and hence features and tokens, stay the same.
"""

from __future__ import annotations

import base64
import random
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MEDIA_DIR = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "media"

IMAGES = ["bird_image.jpg", "dog_image.jpg", "car_image.jpg", "190662.jpg", "210009.jpg"]
AUDIOS = ["bird_audio.wav", "dog_audio.wav"]
VIDEOS = ["a.mp4"]
KINDS = ["image", "audio", "video", "image+audio", "multi-turn", "text-only"]

QUESTIONS = {
    "image": ["What is in this image?", "Describe the picture in detail."],
    "audio": ["What do you hear?", "Describe this sound."],
    "video": ["What happens in the video?", "Describe the scene."],
    "image+audio": ["Does the sound match the picture?", "Describe the picture and the sound."],
    "text-only": ["Tell me a story about a cat.", "What is the capital of France?"],
}
HISTORY = [("What is in this image?", "A dog in a park."), ("What colour is it?", "Brown.")]
FOLLOW_UP = "Where is it going?"


@dataclass(frozen=True)
class MediaItem:
    modality: str  # API modality: image | audio | video
    source: str  # fixture file name
    data: bytes


@dataclass(frozen=True)
class BenchRequest:
    index: int
    kind: str
    question: str
    turns: list[tuple[str, str]] = field(default_factory=list)
    media: list[MediaItem] = field(default_factory=list)

    def messages(self) -> list[dict[str, Any]]:
        """OpenAI chat messages; all media ride in the first user message (one soft token)."""
        first_text = self.turns[0][0] if self.turns else self.question
        parts: list[dict[str, Any]] = [{"type": "text", "text": first_text}]
        parts += [content_part(item) for item in self.media]
        messages: list[dict[str, Any]] = [{"role": "user", "content": parts}]
        if self.turns:
            messages.append({"role": "assistant", "content": self.turns[0][1]})
            for question, answer in self.turns[1:]:
                messages.append({"role": "user", "content": question})
                messages.append({"role": "assistant", "content": answer})
            messages.append({"role": "user", "content": self.question})
        return messages


def content_part(item: MediaItem) -> dict[str, Any]:
    b64 = base64.b64encode(item.data).decode()
    if item.modality == "image":
        return {"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{b64}"}}
    if item.modality == "audio":
        return {"type": "input_audio", "input_audio": {"data": b64, "format": "wav"}}
    if item.modality == "video":
        return {"type": "video_url", "video_url": {"url": f"data:video/mp4;base64,{b64}"}}
    raise ValueError(f"no content part for {item.modality}")


def unique_bytes(data: bytes, tag: str) -> bytes:
    """Same decoded content, different sha256: a container-level no-op carrying `tag`."""
    payload = tag.encode()
    if data[:2] == b"\xff\xd8":  # JPEG: a COM segment right after SOI
        return data[:2] + b"\xff\xfe" + struct.pack(">H", len(payload) + 2) + payload + data[2:]
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":  # WAV: a private chunk at the end
        payload += b"\0" * (len(payload) % 2)  # RIFF chunks are word-aligned
        body = data[8:] + b"bnch" + struct.pack("<I", len(payload)) + payload
        return b"RIFF" + struct.pack("<I", len(body)) + body
    if data[4:8] == b"ftyp":  # MP4: a `free` box at the end (ISO BMFF skips it)
        return data + struct.pack(">I", len(payload) + 8) + b"free" + payload
    raise ValueError("unique_bytes: not a JPEG, WAV or MP4")


def fixture(name: str) -> bytes:
    return (MEDIA_DIR / name).read_bytes()


def _media(modality: str, name: str, tag: str, unique: bool) -> MediaItem:
    data = fixture(name)
    return MediaItem(modality, name, unique_bytes(data, tag) if unique else data)


def make_request(
    index: int, kind: str, rng: random.Random, *, tag: str = "", unique: bool = True
) -> BenchRequest:
    tag = f"{tag or 'bench'}-{index}"
    if kind == "image":
        media = [_media("image", rng.choice(IMAGES), tag, unique)]
    elif kind == "audio":
        media = [_media("audio", rng.choice(AUDIOS), tag, unique)]
    elif kind == "video":
        media = [_media("video", rng.choice(VIDEOS), tag, unique)]
    elif kind == "image+audio":
        media = [
            _media("image", rng.choice(IMAGES), tag, unique),
            _media("audio", rng.choice(AUDIOS), tag, unique),
        ]
    elif kind == "multi-turn":
        media = [_media("image", rng.choice(IMAGES), tag, unique)]
        return BenchRequest(index, kind, FOLLOW_UP, turns=list(HISTORY), media=media)
    elif kind == "text-only":
        media = []
    else:
        raise ValueError(f"unknown kind {kind!r}; expected one of {KINDS}")
    return BenchRequest(index, kind, rng.choice(QUESTIONS[kind]), media=media)


def make_workload(
    count: int, seed: int = 0, *, tag: str = "bench", kinds: Sequence[str] = KINDS
) -> list[BenchRequest]:
    """`count` requests; kinds cycle through a seeded shuffle so every kind appears evenly.

    The content depends on `seed` only; `tag` goes into the media bytes, so two
    workloads with one seed and different tags are the same chats, uncached."""
    rng = random.Random(seed)
    requests = []
    deck: list[str] = []
    for i in range(count):
        if not deck:
            deck = list(kinds)
            rng.shuffle(deck)
        requests.append(make_request(i, deck.pop(), rng, tag=tag))
    return requests


def unique_images(count: int, source: str = "dog_image.jpg", start: int = 0) -> list[bytes]:
    """First-time images for the cache and batching figures: same pixels, new bytes."""
    data = fixture(source)
    return [unique_bytes(data, f"image-{start + i}") for i in range(count)]
