"""Decode bombs and an ordinary photo as chat content parts, and one timed chat request:
what the benchmark's flood and the decode-bomb tests send."""

from __future__ import annotations

import base64
import io
import time

import httpx
import numpy as np
from PIL import Image

from harness import bombs as bomb_media


def bomb_parts(kind: str, count: int) -> list[dict[str, object]]:
    """`count` distinct bombs of `kind` as chat content parts (distinct bytes: no cache hit)."""
    print(f"making {count} {kind} bombs", flush=True)
    if kind == "audio":
        audio = bomb_media.silent_audio()
        return [
            {"type": "input_audio", "input_audio": {"data": _b64(data), "format": "flac"}}
            for data in (bomb_media.salted_flac(audio, salt) for salt in range(count))
        ]
    make = bomb_media.long_gop_video if kind == "video" else bomb_media.jpeg2000_video
    media_type = "video/mp4" if kind == "video" else "video/x-matroska"
    return [
        {
            "type": "video_url",
            "video_url": {"url": f"data:{media_type};base64,{_b64(make(salt=i))}"},
        }
        for i in range(count)
    ]


def photo_part(seed: int) -> dict[str, object]:
    """A fresh 640×480 JPEG of noise (a feature-cache miss every time)."""
    pixels = np.random.default_rng(seed).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=85)
    return {
        "type": "image_url",
        "image_url": {"url": f"data:image/jpeg;base64,{_b64(buffer.getvalue())}"},
    }


async def ask(client: httpx.AsyncClient, model: str, part: dict[str, object]) -> tuple[str, float]:
    """("status code", seconds) of one chat request carrying `part`."""
    content = [{"type": "text", "text": "What is this?"}, part]
    body = {"model": model, "messages": [{"role": "user", "content": content}], "max_tokens": 1}
    start = time.perf_counter()
    try:
        response = await client.post("/v1/chat/completions", json=body)
    except httpx.HTTPError as exc:
        return type(exc).__name__, time.perf_counter() - start
    answer = str(response.status_code)
    if response.status_code != 200:
        answer += " " + str(response.json()["error"].get("code"))
    return answer, time.perf_counter() - start


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
