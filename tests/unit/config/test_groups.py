"""Settings groups: one Settings made of them, each documented and usable alone."""

from __future__ import annotations

import pytest
from pydantic_settings import BaseSettings

import service.config as config
from encoders.media.media_limits import MediaLimits
from service.config import MediaFetchSettings, RequestLimitSettings, Settings

GROUPS = [
    cls
    for name in config.__all__
    if isinstance(cls := getattr(config, name), type)
    and issubclass(cls, BaseSettings)
    and cls is not Settings
]


def test_settings_is_every_group() -> None:
    settings = Settings()
    missing = [cls.__name__ for cls in GROUPS if not isinstance(settings, cls)]
    assert not missing
    grouped = {name for cls in GROUPS for name in cls.model_fields}
    assert grouped == set(Settings.model_fields)  # no field outside a group


@pytest.mark.parametrize("group", GROUPS, ids=lambda cls: cls.__name__)
def test_each_group_and_field_is_documented(group: type[BaseSettings]) -> None:
    # The configuration page is generated from these: a heading, then a line per field.
    assert (group.__doc__ or "").strip()
    undocumented = [name for name, field in group.model_fields.items() if not field.description]
    assert not undocumented


def test_a_group_loads_alone_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PANDAGPT_MEDIA_ALLOW_DOMAINS", "Media.Example.COM.,.cdn.example")
    monkeypatch.setenv("PANDAGPT_MAX_N", "4")
    assert MediaFetchSettings().media_allow_domains == ["media.example.com", ".cdn.example"]
    assert RequestLimitSettings().max_n == 4


def test_media_defaults_agree_with_the_encoders() -> None:
    settings, limits = Settings(), MediaLimits()
    assert settings.max_media_bytes == limits.max_bytes == 32 * 2**20
    assert settings.max_decoded_bytes == limits.max_decoded_bytes
    assert settings.max_audio_decoded_bytes == limits.max_audio_decoded_bytes
    assert settings.max_video_decode_pixels == limits.max_video_decode_pixels
    assert settings.max_decode_cpu_s == limits.max_decode_cpu_s
