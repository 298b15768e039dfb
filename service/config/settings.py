"""The service's one settings object, composed of one group per concern.

Every knob is a field of a group (`service.config.worker`, `.media`, `.gateway`,
`.storage`), read from `PANDAGPT_*` environment variables, an optional YAML/TOML
file (`PANDAGPT_CONFIG_FILE`), or passed in by the CLI. `Settings` inherits every
group, so it loads everything at once and is an instance of each: a component is
typed on the group it reads, and its tests can build just that group. The CLI
builds `Settings` once and hands it down; no other module reads the environment.
"""

from __future__ import annotations

import os
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    TomlConfigSettingsSource,
    YamlConfigSettingsSource,
)

from service.config import gateway, media, storage, worker
from service.config.fields import GROUP_CONFIG


class Settings(
    worker.ModelSettings,
    worker.EngineSettings,
    worker.EncoderSettings,
    media.MediaFetchSettings,
    media.MediaDecodeSettings,
    gateway.HTTPSettings,
    gateway.ProcessSettings,
    gateway.AdmissionSettings,
    gateway.RequestLimitSettings,
    gateway.SamplingDefaultSettings,
    gateway.AuthSettings,
    gateway.WorkerPoolSettings,
    storage.CacheSettings,
    storage.ResponseStoreSettings,
    BaseSettings,
):
    """Every setting of the service: all groups, loaded together."""

    model_config = GROUP_CONFIG

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Precedence: explicit arguments > environment > settings file.
        path = _CONFIG_FILE.get() or os.environ.get("PANDAGPT_CONFIG_FILE")
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings, dotenv_settings]
        if path:
            sources.append(_file_source(settings_cls, Path(path)))
        sources.append(file_secret_settings)
        return tuple(sources)

    @classmethod
    def load(cls, config_file: Path | None = None, **overrides: Any) -> Settings:
        """Build settings from a file (or `PANDAGPT_CONFIG_FILE`), env and overrides.
        `None` overrides are dropped so unset CLI flags fall through."""
        token = _CONFIG_FILE.set(str(config_file) if config_file else None)
        try:
            return cls(**{k: v for k, v in overrides.items() if v is not None})
        finally:
            _CONFIG_FILE.reset(token)


# Set only while `Settings.load` runs: the file path a CLI `--config` asked for.
_CONFIG_FILE: ContextVar[str | None] = ContextVar("pandagpt_config_file", default=None)


def _file_source(settings_cls: type[BaseSettings], path: Path) -> PydanticBaseSettingsSource:
    if not path.is_file():
        raise ValueError(f"settings file not found: {path}")
    if path.suffix in {".yaml", ".yml"}:
        return YamlConfigSettingsSource(settings_cls, yaml_file=path)
    if path.suffix == ".toml":
        return TomlConfigSettingsSource(settings_cls, toml_file=path)
    raise ValueError(f"settings file must be .yaml, .yml or .toml: {path}")
