"""The API key file: plain lines, YAML with limits, and files that must stop the gateway."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest

from harness.processes import PANDAGPT, REPO_ROOT, base_env, free_port
from service.api.middleware.auth import KeyStore
from service.ratelimit.keys import KeyFileError, KeyLimits, find_key, parse_key_file

SECRET = "sk-mobile-0123456789abcdef"


def test_plain_lines_have_no_limits() -> None:
    keys = parse_key_file("# comment\n\nsk-first-key-000\n  sk-second-key-11  \n")
    assert [k.limits for k in keys] == [KeyLimits(), KeyLimits()]
    assert find_key("sk-second-key-11", keys) is keys[1]
    assert find_key("sk-first-key-00", keys) is None
    assert keys[0].name.startswith("key-") and "sk-first" not in keys[0].name


def test_yaml_with_limits_key_and_key_sha256() -> None:
    digest = hashlib.sha256(b"sk-batch-key-abcdef").hexdigest()
    keys = parse_key_file(
        f"""# per-key limits
keys:
  - name: mobile-app
    key: {SECRET}
    requests_per_minute: 600
    tokens_per_minute: 200000
    max_concurrent: 16
    priority: 0
  - name: batch
    key_sha256: {digest.upper()}
    priority: 10
"""
    )
    mobile, batch = keys
    assert mobile.limits == KeyLimits(600, 200000, 16, 0)
    assert batch.limits == KeyLimits(priority=10) and not batch.limits.limited
    assert find_key(SECRET, keys) is mobile
    assert find_key("sk-batch-key-abcdef", keys) is batch  # the hex's case does not matter
    assert SECRET not in repr(keys)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "keys:\n  - name: a\n",
            "keys.0 (name 'a'): Value error, give exactly one of `key` and `key_sha256`",
        ),
        (f"keys:\n  - name: a\n    key: {SECRET}\n    key_sha256: {'a' * 64}\n", "exactly one"),
        ("keys:\n  - name: a\n    key_sha256: abc\n", "64 hex digits"),
        (f"keys:\n  - name: a\n    key: {SECRET}\n    rpm: 5\n", "keys.0.rpm (name 'a'): Extra"),
        (
            f"keys:\n  - name: a\n    key: {SECRET}\n    requests_per_minute: 0\n",
            "keys.0.requests_per_minute (name 'a'): Input should be greater than or equal to 1",
        ),
        (f"keys:\n  - name: bad name\n    key: {SECRET}\n", "must be 1-64 letters"),
        ("keys:\n  - name: a\n    key: short\n", "at least 8 characters"),
        (
            f"keys:\n  - name: a\n    key: {SECRET}\n  - name: a\n    key: {SECRET}x\n",
            "name 'a' appears twice",
        ),
        (
            f"keys:\n  - name: a\n    key: {SECRET}\n  - name: b\n    key: {SECRET}\n",
            "entry 'b' repeats another entry's key",
        ),
        ("keys: [unclosed\n", "not valid YAML"),
        ("keys: 5\n", "keys: Input should be a valid list"),
    ],
)
def test_bad_yaml_names_the_problem_and_never_the_key(text: str, expected: str) -> None:
    with pytest.raises(KeyFileError) as info:
        parse_key_file(text, source="keys.yaml")
    message = str(info.value)
    assert message.startswith("keys.yaml: ") and expected in message
    assert SECRET not in message


def test_gateway_refuses_to_start_on_a_bad_key_file(tmp_path: Path) -> None:
    bad = tmp_path / "keys.yaml"
    bad.write_text(f"keys:\n  - name: a\n    key: {SECRET}\n    requests_per_minut: 5\n")
    argv = [*PANDAGPT, "gateway", "--worker-url", "http://127.0.0.1:9", "--port", str(free_port())]
    env = base_env(PANDAGPT_API_KEY_FILE=str(bad), PANDAGPT_HOST="127.0.0.1")
    done = subprocess.run(argv, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert f"pandagpt: {bad}: keys.0.requests_per_minut (name 'a'): Extra inputs" in done.stderr
    assert SECRET not in done.stderr + done.stdout


async def test_a_running_gateway_reloads_limits_and_keeps_them_through_a_bad_edit(
    tmp_path: Path,
) -> None:
    path = tmp_path / "keys.yaml"
    path.write_text(f"keys:\n  - name: app\n    key: {SECRET}\n    requests_per_minute: 5\n")
    store = KeyStore([], path, recheck_s=0.0)
    assert [k.limits.requests_per_minute for k in await store.keys()] == [5]

    def edit(text: str, mtime: float) -> None:
        path.write_text(text)
        os.utime(path, (mtime, mtime))  # a new mtime even on a coarse-grained filesystem

    edit(f"keys:\n  - name: app\n    key: {SECRET}\n    requests_per_minute: 50\n", 1e9)
    assert [k.limits.requests_per_minute for k in await store.keys()] == [50]
    edit(f"keys:\n  - name: app\n    key: {SECRET}\n    requests_per_minute: -1\n", 2e9)
    assert [k.limits.requests_per_minute for k in await store.keys()] == [50]  # kept
