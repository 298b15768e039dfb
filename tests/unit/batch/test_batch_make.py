"""`pandagpt batch make`: one request per media file, the part type from the bytes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from service.batch.format import parse_input
from service.batch.make import make_requests, part_type
from service.batch.media import encode_body
from service.cli import main
from tests.utils.media import MEDIA_DIR, media_bytes


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """Fixture media under arbitrary names (the bytes decide), plus noise to skip."""
    root = tmp_path / "archive"
    (root / "birds").mkdir(parents=True)
    shutil.copy(MEDIA_DIR / "bird_image.jpg", root / "birds" / "photo.bin")
    shutil.copy(MEDIA_DIR / "bird_audio.wav", root / "birds" / "song.wav")
    shutil.copy(MEDIA_DIR / "a.mp4", root / "clip.mp4")
    (root / "walk.csv").write_text("ax,ay,az,gx,gy,gz\n" + "0.1,0.2,9.8,0,0,0\n" * 20)
    (root / "notes.txt").write_text("not media\n")
    (root / ".hidden.jpg").write_bytes(media_bytes("dog_image.jpg"))
    return root


def test_the_part_type_follows_the_sniffed_type() -> None:
    assert part_type("jpeg") == "image_url"
    assert part_type("png", "thermal") == "thermal_url"
    assert part_type("wav") == "audio_url" and part_type("m4a") == "audio_url"
    assert part_type("ogg") == "audio_url"
    assert part_type("mp4") == "video_url" and part_type("mkv") == "video_url"
    assert part_type("npy") == "imu_url" and part_type("csv") == "imu_url"


def test_chat_requests_with_ids_from_relative_paths(folder: Path, tmp_path: Path) -> None:
    lines, skipped = make_requests(
        folder, prompt="Describe it.", max_tokens=16, relative_to=tmp_path
    )
    assert [p.name for p in skipped] == ["notes.txt"]
    by_id = {line["custom_id"]: line for line in lines}
    assert list(by_id) == ["clip.mp4", "walk.csv", "birds/photo.bin", "birds/song.wav"]
    photo = by_id["birds/photo.bin"]
    assert photo["url"] == "/v1/chat/completions" and photo["body"]["max_tokens"] == 16
    text, part = photo["body"]["messages"][0]["content"]
    assert text == {"type": "text", "text": "Describe it."}
    assert part == {"type": "image_url", "image_url": {"url": "archive/birds/photo.bin"}}
    kinds = {cid: line["body"]["messages"][0]["content"][1]["type"] for cid, line in by_id.items()}
    assert kinds == {
        "clip.mp4": "video_url",
        "walk.csv": "imu_url",
        "birds/photo.bin": "image_url",
        "birds/song.wav": "audio_url",
    }
    assert "model" not in photo["body"]  # the service's first model


def test_embedding_requests(folder: Path) -> None:
    lines, _ = make_requests(folder, prompt=None, embed=True, model="m")
    song = next(line for line in lines if line["custom_id"] == "birds/song.wav")
    assert song["url"] == "/v1/embeddings"
    assert song["body"] == {
        "model": "m",
        "input": [{"type": "audio_url", "audio_url": {"url": str(folder / "birds/song.wav")}}],
    }


def test_the_written_batch_runs_as_is(
    folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "jobs" / "batch.jsonl"
    argv = ["batch", "make", "--media", str(folder), "--prompt", "What is it?", "-o", str(out)]
    assert main(argv) == 0
    assert "skipped 1 files of no media type: notes.txt" in capsys.readouterr().err
    requests = parse_input(out)  # the runner's own check
    assert len(requests) == 4
    photo = next(r for r in requests if r.custom_id == "birds/photo.bin")
    sent = json.loads(encode_body(photo.body, out.parent))  # paths resolve from the batch file
    assert sent["messages"][0]["content"][1]["image_url"]["url"].startswith("data:image/jpeg;")


def test_stdout_and_usage_errors(
    folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["batch", "make", "--media", str(folder), "--embed"]) == 0
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(printed) == 4 and all(Path(_url(line)).is_absolute() for line in printed)
    assert main(["batch", "make", "--media", str(folder)]) == 2  # neither --prompt nor --embed
    assert main(["batch", "make", "--media", str(tmp_path / "nope"), "--embed"]) == 2
    (tmp_path / "empty").mkdir()
    assert main(["batch", "make", "--media", str(tmp_path / "empty"), "--embed"]) == 2


def _url(line: dict) -> str:
    part = line["body"]["input"][0]
    return str(part[part["type"]]["url"])


def test_paths_are_relative_only_below_the_batch_file(folder: Path, tmp_path: Path) -> None:
    below, _ = make_requests(folder, prompt="?", relative_to=tmp_path)
    elsewhere, _ = make_requests(folder, prompt="?", relative_to=tmp_path / "jobs")
    assert _chat_url(below[0]) == "archive/clip.mp4"
    assert _chat_url(elsewhere[0]) == str(folder / "clip.mp4")


def _chat_url(line: dict) -> str:
    part = line["body"]["messages"][0]["content"][1]
    return str(part[part["type"]]["url"])
