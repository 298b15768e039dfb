"""Media paths in a batch body become the inline data the service takes."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import pytest

from service.batch.media import MediaFileError, encode_body, is_path_audio, is_path_url
from tests.utils.media import MEDIA_DIR, media_bytes


def chat(*parts: dict) -> dict:
    return {"messages": [{"role": "user", "content": [{"type": "text", "text": "?"}, *parts]}]}


def url_part(kind: str, url: str) -> dict:
    return {"type": kind, kind: {"url": url}}


def b64(name: str) -> str:
    return base64.b64encode(media_bytes(name)).decode()


@pytest.mark.parametrize(
    ("value", "is_path"),
    [
        ("bird.jpg", True),
        ("media/a.mp4", True),
        ("/abs/x.wav", True),
        ("~/x.png", True),
        ("./c:x.jpg", True),
        ("http://example.com/a.jpg", False),
        ("https://example.com/a.jpg", False),
        ("data:image/jpeg;base64,AAAA", False),
        ("file:///srv/media/a.jpg", False),  # the service's own local-dir feature
    ],
)
def test_a_url_without_a_scheme_is_a_path(value: str, is_path: bool) -> None:
    assert is_path_url(value) is is_path


def test_input_audio_is_a_path_only_when_it_cannot_be_base64_or_names_a_file(
    tmp_path: Path,
) -> None:
    assert is_path_audio("dog_audio.wav", tmp_path)  # a "." is never base64
    assert is_path_audio("clip_1", tmp_path)
    assert not is_path_audio(b64("dog_audio.wav"), tmp_path)
    assert not is_path_audio("UklGRg==", tmp_path)
    (tmp_path / "clip").write_bytes(media_bytes("dog_audio.wav"))
    assert is_path_audio("clip", tmp_path)  # an existing file, even with a base64-ish name


def test_paths_relative_to_the_input_folder_and_absolute_become_data_urls(tmp_path: Path) -> None:
    shutil.copy(MEDIA_DIR / "bird_image.jpg", tmp_path / "bird.jpg")
    body = chat(
        url_part("image_url", "bird.jpg"),
        url_part("video_url", str(MEDIA_DIR / "a.mp4")),
        url_part("thermal_url", "https://example.com/t.jpg"),
    )
    sent = json.loads(encode_body(body, tmp_path))
    parts = sent["messages"][0]["content"]
    assert parts[1]["image_url"]["url"] == "data:image/jpeg;base64," + b64("bird_image.jpg")
    assert parts[2]["video_url"]["url"] == "data:video/mp4;base64," + b64("a.mp4")
    assert parts[3]["thermal_url"]["url"] == "https://example.com/t.jpg"
    assert body["messages"][0]["content"][1]["image_url"]["url"] == "bird.jpg"  # not mutated


def test_input_audio_path_becomes_base64_and_gets_its_format(tmp_path: Path) -> None:
    body = chat({"type": "input_audio", "input_audio": {"data": str(MEDIA_DIR / "dog_audio.wav")}})
    part = json.loads(encode_body(body, tmp_path))["messages"][0]["content"][1]
    assert part["input_audio"] == {"data": b64("dog_audio.wav"), "format": "wav"}
    inline = chat({"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}})
    assert json.loads(encode_body(inline, tmp_path)) == inline


def test_embedding_inputs_are_walked_too(tmp_path: Path) -> None:
    body = {"input": ["a bird", url_part("audio_url", str(MEDIA_DIR / "bird_audio.wav"))]}
    sent = json.loads(encode_body(body, tmp_path))
    assert sent["input"][0] == "a bird"
    assert sent["input"][1]["audio_url"]["url"] == "data:audio/wav;base64," + b64("bird_audio.wav")


def test_unknown_bytes_take_the_type_the_extension_says(tmp_path: Path) -> None:
    (tmp_path / "broken.jpg").write_bytes(b"not an image at all")
    (tmp_path / "blob").write_bytes(b"\x00\x01")
    sent = json.loads(encode_body(chat(url_part("image_url", "broken.jpg")), tmp_path))
    assert sent["messages"][0]["content"][1]["image_url"]["url"].startswith("data:image/jpeg;")
    sent = json.loads(encode_body(chat(url_part("image_url", "blob")), tmp_path))
    url = sent["messages"][0]["content"][1]["image_url"]["url"]
    assert url.startswith("data:application/octet-stream;")


def test_a_missing_or_unreadable_file_names_the_field(tmp_path: Path) -> None:
    with pytest.raises(MediaFileError) as info:
        encode_body(chat(url_part("image_url", "gone.jpg")), tmp_path)
    assert info.value.code == "file_not_found"
    assert "body.messages[0].content[1].image_url.url" in info.value.message
    assert str(tmp_path / "gone.jpg") in info.value.message
    (tmp_path / "folder.jpg").mkdir()
    with pytest.raises(MediaFileError) as info:
        encode_body({"input": [url_part("image_url", "folder.jpg")]}, tmp_path)
    assert info.value.code == "file_unreadable"
