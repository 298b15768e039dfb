"""Process entry points: settings precedence and the start-up banner (no servers started)."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from service.cli import build_parser
from service.processes import load_settings, usage_banner
from service.server import base_url


def test_cli_flags_override_env_and_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "settings.yaml"
    config.write_text("port: 7000\nhost: 10.0.0.1\nmax_queue_size: 3\n")
    monkeypatch.setenv("PANDAGPT_PORT", "7100")
    args = build_parser().parse_args(["serve", "--config", str(config), "--host", "127.0.0.1"])
    settings = load_settings(args)
    assert settings.host == "127.0.0.1"  # flag over file
    assert settings.port == 7100  # env over file
    assert settings.max_queue_size == 3  # file over default


def test_gateway_worker_urls_from_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PANDAGPT_WORKER_URLS", "http://env:1")
    args = build_parser().parse_args(["gateway", "--worker-url", "http://a:1/"])
    settings = load_settings(args, worker_urls=args.worker_url)
    assert settings.worker_urls == ["http://a:1"]


def test_banner_has_working_calls_with_the_key() -> None:
    args = argparse.Namespace(host=None, port=None, model_dir=None, config=None)
    settings = load_settings(args, api_keys=["a-long-test-key"])
    text = usage_banner("http://127.0.0.1:8000", settings, "demo")
    assert "Authorization: Bearer a-long-test-key" in text
    assert 'base_url="http://127.0.0.1:8000/v1"' in text and '"model": "demo"' in text


def test_wildcard_bind_is_shown_as_loopback() -> None:
    assert base_url("0.0.0.0", 8000) == "http://127.0.0.1:8000"
    assert base_url("::1", 8001) == "http://[::1]:8001"


def test_gateway_process_imports_neither_torch_nor_vllm() -> None:
    code = (
        "import sys, service.processes, service.api, service.gateway, service.cache; "
        "print(sorted(m for m in ('torch', 'vllm', 'transformers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
