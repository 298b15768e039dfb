"""API keys and their limits, from settings and from `PANDAGPT_API_KEY_FILE`.

The file is either one key per line (`#` comments; no limits), or YAML with a
top-level `keys:` list, each entry a `name`, a `key` or its `key_sha256`, and
optional limits. A key is held only as its SHA-256: presented keys are hashed
and compared digest to digest, so a file of `key_sha256` entries holds no
secret and the plain key never reaches a log line or a metric label (the
`name` does). A file that cannot be used raises `KeyFileError` naming the
entry and field, so a bad mount stops the gateway at start-up.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

# The name of requests when no key is configured (auth off): usage still has a label.
ANONYMOUS = "anonymous"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,63}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class KeyFileError(ValueError):
    """The key file is unusable; the message names the file, entry and field."""


@dataclass(frozen=True)
class KeyLimits:
    """Per-minute budgets and concurrency of one key; None = unlimited."""

    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None  # prompt + completion tokens
    max_concurrent: int | None = None
    priority: int | None = None  # default priority of the key's requests (lower first)

    @property
    def limited(self) -> bool:
        return any(
            v is not None
            for v in (self.requests_per_minute, self.tokens_per_minute, self.max_concurrent)
        )


@dataclass(frozen=True)
class ApiKey:
    name: str
    sha256: str = field(repr=False)  # hex digest of the key
    limits: KeyLimits = KeyLimits()


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def plain_key(key: str) -> ApiKey:
    """A key without limits (settings, or a line of a plain file), named by a hash prefix."""
    hexdigest = digest(key)
    return ApiKey(name=f"key-{hexdigest[:8]}", sha256=hexdigest)


def find_key(presented: str, keys: list[ApiKey]) -> ApiKey | None:
    """The key matching `presented`; every digest is compared, so timing tells nothing."""
    wanted = digest(presented).encode()
    found = None
    for key in keys:
        if hmac.compare_digest(wanted, key.sha256.encode()) and found is None:
            found = key
    return found


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    key: str | None = Field(None, min_length=8)
    key_sha256: str | None = None
    requests_per_minute: int | None = Field(None, ge=1)
    tokens_per_minute: int | None = Field(None, ge=1)
    max_concurrent: int | None = Field(None, ge=1)
    priority: int | None = None

    @model_validator(mode="after")
    def _check(self) -> _Entry:
        if not _NAME.match(self.name):
            raise ValueError(
                f"name {self.name!r} must be 1-64 letters, digits or . _ : - "
                "(it becomes a metric label)"
            )
        if (self.key is None) == (self.key_sha256 is None):
            raise ValueError("give exactly one of `key` and `key_sha256`")
        if self.key_sha256 is not None and not _HEX64.match(self.key_sha256.lower()):
            raise ValueError("key_sha256 must be 64 hex digits (sha256sum of the key)")
        return self

    def to_key(self) -> ApiKey:
        hexdigest = self.key_sha256.lower() if self.key_sha256 else digest(self.key or "")
        limits = KeyLimits(
            requests_per_minute=self.requests_per_minute,
            tokens_per_minute=self.tokens_per_minute,
            max_concurrent=self.max_concurrent,
            priority=self.priority,
        )
        return ApiKey(name=self.name, sha256=hexdigest, limits=limits)


class _KeyFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    keys: list[_Entry]


def is_yaml(text: str) -> bool:
    """YAML when the first line that is not blank or a comment opens the `keys:` map."""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            return stripped == "---" or stripped.startswith("keys:")
    return False


def parse_key_file(text: str, source: str = "api_key_file") -> list[ApiKey]:
    """The keys in a key file's text; `KeyFileError` if it cannot be used."""
    if not is_yaml(text):
        lines = (line.strip() for line in text.splitlines())
        return [plain_key(line) for line in lines if line and not line.startswith("#")]
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise KeyFileError(f"{source}: not valid YAML: {exc}") from exc
    try:
        parsed = _KeyFile.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(_describe(err, data) for err in exc.errors())
        raise KeyFileError(f"{source}: {problems}") from exc
    keys = [entry.to_key() for entry in parsed.keys]
    _check_unique(keys, source)
    return keys


def _describe(err: object, data: object) -> str:
    assert isinstance(err, dict)
    loc = [str(part) for part in err.get("loc", ())]
    where = ".".join(loc) or "file"
    entries = data.get("keys") if isinstance(data, dict) else None
    if len(loc) >= 2 and loc[0] == "keys" and loc[1].isdigit() and isinstance(entries, list):
        entry = entries[int(loc[1])]
        if isinstance(entry, dict) and isinstance(entry.get("name"), str):
            where += f" (name {entry['name']!r})"
    # pydantic's message never quotes the input here: a `key` value stays out of the error.
    return f"{where}: {err.get('msg')}"


def _check_unique(keys: list[ApiKey], source: str) -> None:
    names: set[str] = set()
    digests: set[str] = set()
    for key in keys:
        if key.name in names:
            raise KeyFileError(f"{source}: name {key.name!r} appears twice")
        if key.sha256 in digests:
            raise KeyFileError(f"{source}: entry {key.name!r} repeats another entry's key")
        names.add(key.name)
        digests.add(key.sha256)


def read_key_file(path: Path) -> list[ApiKey]:
    """The keys of the file at `path`; `OSError` if unreadable, `KeyFileError` if unusable."""
    return parse_key_file(path.read_text(), source=str(path))
