"""Settings: env lists, settings files, CLI overrides, normalisation."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from service.config import Settings


def test_env_lists_comma_or_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PANDAGPT_WORKER_URLS", "http://w1:8001/, http://w2:8001")
    monkeypatch.setenv("PANDAGPT_API_KEYS", '["sk-aaaaaaaaaa", "sk-bbbbbbbbbb"]')
    monkeypatch.setenv("PANDAGPT_MEDIA_ALLOW_NETWORKS", "10.1.2.3/8")
    settings = Settings()
    assert settings.worker_urls == ["http://w1:8001", "http://w2:8001"]
    assert settings.api_keys == ["sk-aaaaaaaaaa", "sk-bbbbbbbbbb"]
    assert settings.media_allow_networks == ["10.0.0.0/8"]
    assert "sk-aaaaaaaaaa" not in repr(settings)


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("s.yaml", "port: 9100\nmax_media_items: 2\n"),
        ("s.toml", "port = 9100\nmax_media_items = 2\n"),
    ],
)
def test_settings_file_under_env_and_flags(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, text: str
) -> None:
    path = tmp_path / name
    path.write_text(text)
    assert Settings.load(path).port == 9100
    monkeypatch.setenv("PANDAGPT_MAX_MEDIA_ITEMS", "5")
    settings = Settings.load(path, port=9200, host=None)
    assert (settings.port, settings.max_media_items) == (9200, 5)
    monkeypatch.setenv("PANDAGPT_CONFIG_FILE", str(path))
    assert Settings().port == 9100


def test_bad_values_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError):
        Settings(media_allow_networks=["not-a-network"])
    with pytest.raises(ValueError, match="settings file"):
        Settings.load(tmp_path / "missing.yaml")
