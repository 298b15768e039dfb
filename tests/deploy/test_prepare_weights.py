"""The worker's init script (helm/pandagpt/files/prepare-weights.sh, also used by compose),
run for real with a stand-in `pandagpt` that records its arguments; those arguments are
then parsed by the real CLI parser, so a renamed flag fails here."""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import pytest

from service.cli import build_parser
from tests.deploy.conftest import CHART, find

SCRIPT = CHART / "files" / "prepare-weights.sh"

# Records each call; `convert` writes a manifest into --output like the real one.
STUB = """#!/bin/sh
echo "$*" >> "$CALLS"
if [ "$1" = convert ]; then
  while [ $# -gt 0 ]; do [ "$1" = --output ] && out="$2"; shift; done
  mkdir -p "$out" && echo '{}' > "$out/pandagpt.json"
fi
"""


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stub = bin_dir / "pandagpt"
    stub.write_text(STUB)
    stub.chmod(0o755)
    models = tmp_path / "models"
    return {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "CALLS": str(tmp_path / "calls"),
        "MODEL_DIR": str(models / "pandagpt"),
        "VICUNA_DIR": str(models / "vicuna"),
        "CACHE_DIR": str(models / "cache"),
        "VARIANT": "13b_max_len_400",
        "DELTA_FILE": "pandagpt_13b_max_len_400/pytorch_model.pt",
        "IMAGEBIND_FILE": "imagebind_huge.pth",
        "CONVERT_ARGS": "--keep-lora",
    }


def run(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=30)


def calls(env: dict[str, str]) -> list[list[str]]:
    path = Path(env["CALLS"])
    return [shlex.split(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_refuses_without_vicuna(env: dict[str, str]) -> None:
    proc = run(env)
    assert proc.returncode == 1
    assert "no Vicuna v0" in proc.stderr and "LLaMA licence" in proc.stderr
    assert calls(env) == []


def test_fetches_converts_then_does_nothing(env: dict[str, str]) -> None:
    vicuna = Path(env["VICUNA_DIR"])
    vicuna.mkdir(parents=True)
    (vicuna / "config.json").write_text("{}")
    proc = run(env)
    assert proc.returncode == 0, proc.stderr
    fetch, convert = calls(env)
    parser = build_parser()
    fetch_args = parser.parse_args(fetch)
    assert fetch_args.command == "fetch-weights" and fetch_args.variant == "13b_max_len_400"
    assert str(fetch_args.cache_dir) == env["CACHE_DIR"]
    convert_args = parser.parse_args(convert)
    assert convert_args.command == "convert" and convert_args.keep_lora
    assert str(convert_args.vicuna) == env["VICUNA_DIR"]
    assert str(convert_args.delta) == f"{env['CACHE_DIR']}/{env['DELTA_FILE']}"
    assert str(convert_args.output) == env["MODEL_DIR"] + ".partial"  # renamed when complete
    assert (Path(env["MODEL_DIR"]) / "pandagpt.json").is_file()
    assert not Path(env["MODEL_DIR"] + ".partial").exists()

    again = run(env)
    assert again.returncode == 0 and "converted model found" in again.stdout
    assert len(calls(env)) == 2


def test_chart_defaults_point_where_fetch_weights_writes(render, tmp_path: Path) -> None:
    from service.weights import fetch

    def fake_hub(repo_id: str, filename: str, local_dir: Path) -> Path:
        local_dir.mkdir(parents=True)
        (local_dir / filename).write_bytes(b"delta")
        return local_dir / filename

    records = fetch.fetch_weights("7b_max_len_1024", tmp_path, skip_imagebind=True, hub=fake_hub)
    (delta_path,) = [r["path"] for r in records.values()]
    (worker,) = find(render(), "Deployment", "worker")
    (init,) = worker["spec"]["template"]["spec"]["initContainers"]
    env = {e["name"]: e["value"] for e in init["env"]}
    assert env["VARIANT"] == "7b_max_len_1024"
    assert env["DELTA_FILE"] == delta_path
    assert env["IMAGEBIND_FILE"] == fetch.IMAGEBIND_FILE
