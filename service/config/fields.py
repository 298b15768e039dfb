"""What every settings group shares: where its values come from, and list parsing."""

from __future__ import annotations

import json
from typing import Annotated

from pydantic import BeforeValidator
from pydantic_settings import NoDecode, SettingsConfigDict

# Every group reads the same `PANDAGPT_*` variables, so a group built on its own
# (in a component's tests) sees what the whole `Settings` would.
GROUP_CONFIG = SettingsConfigDict(env_prefix="PANDAGPT_", extra="ignore")


def split_list(value: object) -> object:
    """Env vars arrive as one string: accept a JSON list or comma-separated items."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [item.strip() for item in text.split(",") if item.strip()]
    return value


# A list setting: a JSON list or comma-separated items from the environment, a
# list from the settings file or the CLI.
StrList = Annotated[list[str], NoDecode, BeforeValidator(split_list)]
