"""Local media files in a batch body become inline data the service takes.

A batch names its media by path, so a folder of files is a batch without
base64 in the input file. Where a content part takes a URL (`image_url.url`,
`audio_url.url`, `video_url.url`, `thermal_url.url`, `depth_url.url`,
`imu_url.url`) or base64 (`input_audio.data`), the runner reads the file and
sends a `data:` URL (base64 for `input_audio`). How a value is recognised as a
path, so that nothing is guessed from the disk's contents:

- A URL field: any value without a URL scheme is a path (`bird.jpg`,
  `media/a.mp4`, `/data/x.wav`, `~/x.png`; write `./c:x.jpg` for a name that
  starts like a scheme). Values with a scheme go to the
  service unchanged: `http(s)://` (the service fetches it), `data:`, and
  `file://` (the service's own `PANDAGPT_MEDIA_LOCAL_DIR`, read on its side).
- `input_audio.data`: a path when it holds a character base64 never has (the
  `.` of a file extension, `_`, `-`…) or names an existing file; otherwise it
  is base64 (line breaks allowed) and goes unchanged.

Relative paths are relative to the input file's folder. A missing or
unreadable file fails this request only (`file_not_found`, `file_unreadable`).
The type in the `data:` URL comes from the file's magic bytes (the project's
one sniffer), then its extension: the service checks it again either way.
Everything here is blocking file work; the runner calls `encode_body` in a
thread so the event loop keeps serving the other requests.
"""

from __future__ import annotations

import base64
import copy
import json
import mimetypes
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from encoders.media.sniff import MIME_TYPES, sniff

URL_PARTS = frozenset(
    {"image_url", "audio_url", "video_url", "thermal_url", "depth_url", "imu_url"}
)
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")
_BASE64 = re.compile(r"^[A-Za-z0-9+/=\s]*$")
# Longer values are data, not a file name (and stat() on them would fail anyway).
_MAX_PATH_CHARS = 4096


class MediaFileError(Exception):
    """A media file the runner could not read; fails one request (an error line)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class _Slot:
    """Where in the body a path sits: the dict holding it and the key to replace."""

    holder: dict[str, Any]
    key: str
    value: str
    where: str  # the body field, for the error message
    audio: dict[str, Any] | None = None  # the input_audio object (its format is filled)


def is_path_url(value: str) -> bool:
    """A URL field's value is a local path when it has no URL scheme."""
    return not _SCHEME.match(value)


def is_path_audio(value: str, base_dir: Path) -> bool:
    """`input_audio.data` is a path when it cannot be base64, or names a file."""
    if len(value) > _MAX_PATH_CHARS:
        return False
    if not _BASE64.match(value):
        return True
    return resolve(value, base_dir).is_file()


def resolve(value: str, base_dir: Path) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else base_dir / path


def encode_body(body: dict[str, Any], base_dir: Path) -> bytes:
    """The request body as JSON bytes, every media path replaced by its data.
    Raises `MediaFileError` for the first file that cannot be read."""
    body = copy.deepcopy(body)  # the input's requests stay as read (strings are shared)
    for slot in _find_slots(body, base_dir, "body"):
        data, name = _read(slot.value, base_dir, slot.where)
        b64 = base64.b64encode(data).decode("ascii")
        if slot.audio is not None:
            slot.holder[slot.key] = b64
            if not slot.audio.get("format") and name:
                slot.audio["format"] = name
        else:
            mime = _mime(name, slot.value)
            slot.holder[slot.key] = f"data:{mime};base64,{b64}"
    return json.dumps(body, ensure_ascii=False).encode()


def _find_slots(node: Any, base_dir: Path, where: str) -> list[_Slot]:
    """Every media path in `node` (chat messages, embedding inputs: walked alike)."""
    found: list[_Slot] = []
    if isinstance(node, list):
        for i, item in enumerate(node):
            found += _find_slots(item, base_dir, f"{where}[{i}]")
    elif isinstance(node, dict):
        slot = _slot_of_part(node, base_dir, where)
        if slot is not None:
            return [slot]
        for key, value in node.items():
            found += _find_slots(value, base_dir, f"{where}.{key}")
    return found


def _slot_of_part(part: dict[str, Any], base_dir: Path, where: str) -> _Slot | None:
    kind = part.get("type")
    inner = part.get(kind) if isinstance(kind, str) else None
    if not isinstance(inner, dict):
        return None
    if kind in URL_PARTS:
        url = inner.get("url")
        if isinstance(url, str) and is_path_url(url):
            return _Slot(inner, "url", url, f"{where}.{kind}.url")
    elif kind == "input_audio":
        data = inner.get("data")
        if isinstance(data, str) and is_path_audio(data, base_dir):
            return _Slot(inner, "data", data, f"{where}.input_audio.data", audio=inner)
    return None


def _read(value: str, base_dir: Path, where: str) -> tuple[bytes, str | None]:
    """The file's bytes and sniffed type name (None when the bytes say nothing)."""
    path = resolve(value, base_dir)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise MediaFileError("file_not_found", f"{where}: no such file: {path}") from None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise MediaFileError("file_unreadable", f"{where}: cannot read {path}: {reason}") from None
    return data, sniff(data)


def _mime(name: str | None, value: str) -> str:
    if name is not None:
        return MIME_TYPES[name]
    guessed, _ = mimetypes.guess_type(value)
    return guessed or "application/octet-stream"
