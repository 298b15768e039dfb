"""The configuration page's settings tables match `service.config.Settings`, and the
generator groups fields by the classes that declare them."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "gen-settings-docs.py"


def test_settings_tables_are_current() -> None:
    proc = subprocess.run([sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.fixture
def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_settings_docs", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class EngineGroup(BaseSettings):
    """The language engine.

    More text that is not the heading.
    """

    max_num_seqs: int = Field(64, ge=1, description="Max sequences at once.")


class MediaGroup(BaseSettings):
    """Media decoding."""

    video_codecs: list[str] = Field(default_factory=lambda: ["h264"], description="Decoders.")
    media_local_dir: Path | None = None


class GroupedSettings(EngineGroup, MediaGroup, BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PANDAGPT_")


def test_one_table_per_declaring_class(
    generator: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(generator, "Settings", GroupedSettings)
    tables = generator.build_tables()
    assert tables.index("### The language engine") < tables.index("### Media decoding")
    assert "More text" not in tables
    assert "| `PANDAGPT_MAX_NUM_SEQS` | integer (≥ 1) | `64` | Max sequences at once. |" in tables
    assert "| `PANDAGPT_VIDEO_CODECS` | list of strings | `h264` | Decoders. |" in tables
    assert f"| `PANDAGPT_MEDIA_LOCAL_DIR` | path or unset | unset | {generator.UNDESCRIBED} |" in (
        tables
    )
    assert tables.count("PANDAGPT_MAX_NUM_SEQS") == 1
