"""`pandagpt batch make`: a folder of media becomes a batch file, one request per file.

So that captioning or embedding an archive is two commands, not a script. Each
file's kind comes from its magic bytes (`encoders.media.sniff`, the service's
own sniffer), never from its name, and picks the content part:

- images (jpeg png gif webp bmp tiff) → `image_url`; thermal and depth maps are
  images too, and nothing in a file tells them apart from photos: give
  `--images-as thermal` (or `depth`) for a folder of them;
- audio (wav flac mp3 aac, and m4a, ogg) → `audio_url`;
- video containers (mp4 mov mkv webm avi) → `video_url` (a container holding
  only sound is refused by the service as `media_no_video_stream`);
- IMU recordings (`.npy`, CSV of numbers) → `imu_url`.

Files of no known kind, and hidden files and folders, are skipped (and counted
on stderr). The custom_id is the file's path relative to the folder, so a second
`make` of the same folder yields the same ids and a run over it resumes. Media
paths in the requests are relative to the output file's folder when the media
sit below it (the runner resolves them from the input file's folder), else
absolute (also when the batch goes to stdout).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from encoders.media.sniff import ACCEPTED, sniff
from service.batch.media import is_path_url

_SNIFF_BYTES = 4096  # the sniffer reads at most this much (CSV detection)
_AUDIO_FIRST = frozenset({"m4a", "ogg"})  # types both decoders take, usually sound


def part_type(name: str, images_as: str = "image") -> str | None:
    """The content part type for a sniffed media type, or None."""
    if name in ACCEPTED["imu"]:
        return "imu_url"
    if name in ACCEPTED["image"]:
        return f"{images_as}_url"
    if name in _AUDIO_FIRST or (name in ACCEPTED["audio"] and name not in ACCEPTED["video"]):
        return "audio_url"
    if name in ACCEPTED["video"]:
        return "video_url"
    return None


def media_files(root: Path) -> Iterator[Path]:
    """Every non-hidden file under `root`, in a stable (sorted) order."""
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith("."):
                yield Path(folder) / name


def make_requests(
    root: Path,
    *,
    prompt: str | None,
    embed: bool = False,
    max_tokens: int | None = None,
    model: str | None = None,
    images_as: str = "image",
    relative_to: Path | None = None,
) -> tuple[list[dict[str, Any]], list[Path]]:
    """(batch input lines, skipped files) for the media under `root`. Paths in the
    lines are relative to `relative_to` when given, else absolute."""
    lines: list[dict[str, Any]] = []
    skipped: list[Path] = []
    for path in media_files(root):
        with path.open("rb") as file:
            name = sniff(file.read(_SNIFF_BYTES))
        kind = part_type(name, images_as) if name else None
        if kind is None:
            skipped.append(path)
            continue
        ref = _reference(path.resolve(), relative_to)
        if not is_path_url(ref):
            ref = f"./{ref}"  # `c:x.jpg` would read as a URL scheme
        part = {"type": kind, kind: {"url": ref}}
        custom_id = path.relative_to(root).as_posix()
        lines.append(_line(custom_id, part, prompt, embed, max_tokens, model))
    return lines, skipped


def _reference(location: Path, relative_to: Path | None) -> str:
    """The path written into a request: relative to the batch file's folder when the
    media sit below it (the pair can move together), else absolute."""
    if relative_to is not None:
        relative = os.path.relpath(location, relative_to)
        if ".." not in Path(relative).parts:
            return relative
    return str(location)


def _line(
    custom_id: str,
    part: dict[str, Any],
    prompt: str | None,
    embed: bool,
    max_tokens: int | None,
    model: str | None,
) -> dict[str, Any]:
    body: dict[str, Any] = {} if model is None else {"model": model}
    if embed:
        body["input"] = [part]
        return {"custom_id": custom_id, "method": "POST", "url": "/v1/embeddings", "body": body}
    text = {"type": "text", "text": prompt or ""}
    body["messages"] = [{"role": "user", "content": [text, part]}]
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": body}


def run_make_cli(args: argparse.Namespace) -> int:
    """`pandagpt batch make`: 0 when a batch was written, 2 for a usage error."""
    root: Path = args.media
    if not root.is_dir():
        print(f"pandagpt batch make: --media {root} is not a folder", file=sys.stderr)
        return 2
    if args.embed == bool(args.prompt):
        print(
            "pandagpt batch make: give --prompt TEXT (chat requests) or --embed"
            " (embedding requests), not both",
            file=sys.stderr,
        )
        return 2
    output: Path | None = args.output
    relative_to = output.resolve().parent if output is not None else None
    lines, skipped = make_requests(
        root,
        prompt=args.prompt,
        embed=args.embed,
        max_tokens=args.max_tokens,
        model=args.model,
        images_as=args.images_as,
        relative_to=relative_to,
    )
    if skipped:
        names = ", ".join(str(p.relative_to(root)) for p in skipped[:5])
        more = f" and {len(skipped) - 5} more" if len(skipped) > 5 else ""
        print(f"skipped {len(skipped)} files of no media type: {names}{more}", file=sys.stderr)
    if not lines:
        print(f"pandagpt batch make: no media files under {root}", file=sys.stderr)
        return 2
    text = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines)
    if output is None:
        sys.stdout.write(text)
    else:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text, encoding="utf-8")
        print(f"wrote {len(lines)} requests to {output}", file=sys.stderr)
    return 0
