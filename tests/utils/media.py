"""Fixture media as the API takes it: data: URLs and OpenAI content parts."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

MEDIA_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "media"

MIME = {".jpg": "image/jpeg", ".wav": "audio/wav", ".mp4": "video/mp4"}


def media_bytes(name: str) -> bytes:
    return (MEDIA_DIR / name).read_bytes()


def data_url(name: str) -> str:
    mime = MIME[Path(name).suffix]
    return f"data:{mime};base64,{base64.b64encode(media_bytes(name)).decode()}"


def text_part(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def image_part(url: str) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": url}}


def audio_part(name: str) -> dict[str, Any]:
    """OpenAI's `input_audio` part: base64 bytes and a format."""
    data = base64.b64encode(media_bytes(name)).decode()
    return {"type": "input_audio", "input_audio": {"data": data, "format": Path(name).suffix[1:]}}


def url_part(kind: str, url: str) -> dict[str, Any]:
    """The URL extensions: `video_url`, `thermal_url`, `depth_url`, `audio_url`, `imu_url`."""
    return {"type": kind, kind: {"url": url}}


def user(*parts: dict[str, Any] | str) -> dict[str, Any]:
    content = [text_part(p) if isinstance(p, str) else p for p in parts]
    return {"role": "user", "content": content}
