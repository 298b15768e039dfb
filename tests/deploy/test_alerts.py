"""The alert rules and the compose Prometheus config through Prometheus' own `promtool`:
syntax, the config that loads them, and unit tests (alerts_test.yaml) showing each alert
fires on synthetic series and none fires on a healthy service."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.deploy.conftest import ROOT

PROMTOOL = ROOT / ".cache" / "bin" / "promtool"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yaml"


@pytest.fixture(scope="module")
def promtool() -> Path:
    if not PROMTOOL.exists():
        subprocess.run(["bash", str(ROOT / "scripts" / "install-promtool.sh")], check=True)
    return PROMTOOL


def run(promtool: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(promtool), *args], capture_output=True, text=True, timeout=60)


def test_rules_check(promtool: Path) -> None:
    proc = run(promtool, "check", "rules", str(ALERTS))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS: 7 rules found" in proc.stdout


def test_compose_prometheus_config_check(promtool: Path, tmp_path: Path) -> None:
    # The config names the rule file at its in-container path; point it at a copy here.
    config = (ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text()
    (tmp_path / "alerts.yaml").write_text(ALERTS.read_text())
    (tmp_path / "prometheus.yml").write_text(
        config.replace("/etc/prometheus/alerts.yaml", str(tmp_path / "alerts.yaml"))
    )
    proc = run(promtool, "check", "config", str(tmp_path / "prometheus.yml"))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_alert_unit_tests(promtool: Path) -> None:
    proc = run(promtool, "test", "rules", str(Path(__file__).with_name("alerts_test.yaml")))
    assert proc.returncode == 0, proc.stdout + proc.stderr
