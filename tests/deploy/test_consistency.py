"""Deployment files against the service: every `PANDAGPT_*` variable is a Settings field,
every probe path is a route of the app it probes, every metric in the alerts and the
dashboard is one `service.metrics` exports (with the labels it has)."""

from __future__ import annotations

import json
import os
import re
from collections.abc import AsyncIterator, Iterator
from functools import cache
from typing import Any

import promql_parser
import pytest
import yaml
from prometheus_client import Counter, Gauge, Histogram

from service.config import Settings
from tests.deploy.conftest import CHART, PROFILES, ROOT, containers, find, profile_args

ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yaml"
DASHBOARD = ROOT / "deploy" / "grafana" / "pandagpt.json"
COMPOSE = ROOT / "deploy" / "compose.yaml"
# Labels Prometheus adds when scraping (target labels), not the service.
TARGET_LABELS = {"namespace", "service", "pod", "job", "instance", "container", "endpoint"}


# --- PANDAGPT_* variables ---


def chart_env(render) -> dict[str, set[str]]:
    """PANDAGPT_* name -> the profiles/containers that set it."""
    seen: dict[str, set[str]] = {}
    for profile in PROFILES:
        for manifest in render(*profile_args(profile)):
            for container in containers(manifest):
                for env in container.get("env", []):
                    if env["name"].startswith("PANDAGPT_"):
                        seen.setdefault(env["name"], set()).add(
                            f"{profile.name}:{container['name']}"
                        )
    return seen


def compose_env() -> dict[str, set[str]]:
    seen: dict[str, set[str]] = {}
    for name, service in yaml.safe_load(COMPOSE.read_text())["services"].items():
        for var in service.get("environment", {}):
            if var.startswith("PANDAGPT_"):
                seen.setdefault(var, set()).add(f"compose:{name}")
    return seen


def test_every_pandagpt_variable_is_a_settings_field(render) -> None:
    fields = set(Settings.model_fields)
    used = chart_env(render)
    for name, where in compose_env().items():
        used.setdefault(name, set()).update(where)
    for dockerfile in (ROOT / "deploy").glob("Dockerfile.*"):
        for name in re.findall(r"\b(PANDAGPT_[A-Z0-9_]+)=", dockerfile.read_text()):
            used.setdefault(name, set()).add(dockerfile.name)
    unknown = {
        name: sorted(where)
        for name, where in used.items()
        if name.removeprefix("PANDAGPT_").lower() not in fields
    }
    assert not unknown, f"not fields of service.config.Settings: {unknown}"
    # The settings the chart exists to set are really set.
    for name in ("PANDAGPT_WORKER_URLS", "PANDAGPT_REDIS_URL", "PANDAGPT_MODEL_DIR",
                 "PANDAGPT_TENSOR_PARALLEL_SIZE", "PANDAGPT_API_KEY_FILE"):  # fmt: skip
        assert name in used, name


def test_rendered_environments_build_valid_settings(render, monkeypatch) -> None:
    """Each container's literal PANDAGPT_* values pass Settings' own validation."""
    for profile in PROFILES:
        for manifest in find(render(*profile_args(profile)), "Deployment"):
            for container in manifest["spec"]["template"]["spec"]["containers"]:
                with monkeypatch.context() as m:
                    for key in [k for k in os.environ if k.startswith("PANDAGPT_")]:
                        m.delenv(key)
                    for env in container["env"]:
                        if env["name"].startswith("PANDAGPT_") and "value" in env:
                            m.setenv(env["name"], env["value"])
                    try:
                        Settings()
                    except Exception as exc:  # pydantic's ValidationError, reported with context
                        pytest.fail(f"{profile.name} {container['name']}: {exc}")


# --- probe paths and ports ---


class _IdleWorker:
    """Enough of a `Worker` to build the apps and list their routes (no call is made)."""

    def chat(self, job: Any) -> AsyncIterator[Any]:
        raise NotImplementedError

    async def embed(self, job: Any) -> Any:
        raise NotImplementedError

    async def models(self) -> list[Any]:
        return []

    async def readiness(self) -> Any:
        raise NotImplementedError

    async def aclose(self) -> None:
        return None


def _paths(app: Any) -> set[str]:
    return {route.path for route in app.routes if hasattr(route, "path")}


@cache
def gateway_routes() -> frozenset[str]:
    from service.api.app import create_app

    return frozenset(_paths(create_app(Settings(), _IdleWorker())))  # type: ignore[arg-type]


@cache
def worker_routes() -> frozenset[str]:
    try:
        from service.worker.http_app import create_worker_app
    except ModuleNotFoundError as exc:
        if exc.name != "service.worker.http_app":
            raise
        pytest.fail("service.worker.http_app is missing: the worker probes cannot be checked")
    return frozenset(_paths(create_worker_app(_IdleWorker(), Settings())))  # type: ignore[arg-type]


def probes(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {k: v["httpGet"] for k, v in container.items() if k.endswith("Probe") and "httpGet" in v}


def test_chart_probes_hit_real_routes_on_the_served_port(render) -> None:
    routes = {"gateway": gateway_routes(), "worker": worker_routes()}
    for profile in PROFILES:
        for manifest in find(render(*profile_args(profile)), "Deployment"):
            component = manifest["metadata"]["labels"]["app.kubernetes.io/component"]
            main = manifest["spec"]["template"]["spec"]["containers"][0]
            ports = {p["name"]: p["containerPort"] for p in main["ports"]}
            served = int(main["args"][main["args"].index("--port") + 1])
            assert main["args"][0] == component
            found = probes(main)
            assert {"readinessProbe", "livenessProbe"} <= set(found), component
            for kind, probe in found.items():
                assert probe["path"] in routes[component], f"{component} {kind} {probe['path']}"
                assert ports[probe["port"]] == served, f"{component} {kind} port"


def test_service_ports_reach_the_container_port(render) -> None:
    for profile in PROFILES:
        manifests = render(*profile_args(profile))
        for service in find(manifests, "Service"):
            component = service["metadata"]["labels"]["app.kubernetes.io/component"]
            selector = service["spec"]["selector"].items()  # one workload per worker group
            (workload,) = [
                m
                for m in manifests
                if m["kind"] in {"Deployment", "StatefulSet"}
                and selector <= m["spec"]["template"]["metadata"]["labels"].items()
            ]
            names = {p["name"] for c in containers(workload) for p in c.get("ports", [])}
            for port in service["spec"]["ports"]:
                assert port["targetPort"] in names, f"{component}: {port['targetPort']}"


def test_gateway_reaches_the_worker_service(render) -> None:
    manifests = render()
    (gateway,) = find(manifests, "Deployment", "gateway")
    env = {
        e["name"]: e.get("value")
        for e in gateway["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    (worker_service,) = find(manifests, "Service", "worker")
    port = worker_service["spec"]["ports"][0]["port"]
    assert env["PANDAGPT_WORKER_URLS"] == f"http://{worker_service['metadata']['name']}:{port}"


def test_metrics_path_is_served_by_both_apps(render) -> None:
    manifests = render(*profile_args(CHART / "ci" / "ingress-monitoring-netpol-values.yaml"))
    (monitor,) = find(manifests, "ServiceMonitor")
    path = monitor["spec"]["endpoints"][0]["path"]
    assert path in gateway_routes() and path in worker_routes()


def test_default_ports_match_the_service() -> None:
    from service.cli import build_parser

    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["gateway"]["port"] == Settings.model_fields["port"].default == 8000
    worker_cmd = build_parser()._subparsers._group_actions[0].choices["worker"]  # type: ignore[union-attr]
    port_help = next(a.help for a in worker_cmd._actions if "--port" in a.option_strings)
    assert f"default {values['worker']['port']}" in str(port_help)


def test_healthchecks_in_images_and_compose_hit_real_routes() -> None:
    texts = {
        "gateway": [(ROOT / "deploy" / "Dockerfile.gateway").read_text()],
        "worker": [(ROOT / "deploy" / "Dockerfile.worker").read_text()],
    }
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    for name in ("gateway", "worker"):
        texts[name].append(json.dumps(services[name]["healthcheck"]["test"]))
    ports = {"gateway": 8000, "worker": 8001}
    routes = {"gateway": gateway_routes(), "worker": worker_routes()}
    for name, sources in texts.items():
        for text in sources:
            urls = re.findall(r"http://127\.0\.0\.1:(\d+)(/[\w/]+)", text)
            assert urls, f"{name}: no health URL"
            for port, path in urls:
                assert int(port) == ports[name] and path in routes[name], (name, port, path)


# --- metrics ---


@cache
def exported() -> dict[str, tuple[str, frozenset[str]]]:
    """Series name -> (family, label names) for every metric `service.metrics` defines."""
    try:
        from service.metrics import Metrics
    except ModuleNotFoundError as exc:
        pytest.fail(f"service.metrics is missing ({exc}): alerts and dashboard cannot be checked")
    series: dict[str, tuple[str, frozenset[str]]] = {}
    for metric in vars(Metrics()).values():
        if not isinstance(metric, Counter | Gauge | Histogram):
            continue
        name, labels = metric._name, frozenset(metric._labelnames)
        if isinstance(metric, Counter):
            names = [f"{name}_total"]
        elif isinstance(metric, Histogram):
            names = [f"{name}_bucket", f"{name}_sum", f"{name}_count"]
            labels |= {"le"}
        else:
            names = [name]
        for series_name in names:
            series[series_name] = (name, labels)
    assert series, "service.metrics.Metrics defines no metric"
    return series


def alert_exprs() -> list[str]:
    rules = yaml.safe_load(ALERTS.read_text())
    return [r["expr"] for g in rules["groups"] for r in g["rules"]]


def dashboard_exprs() -> list[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [t["expr"] for p in panels for t in p.get("targets", [])]


GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$namespace": ".*"}


def parse(expr: str) -> Any:
    """The PromQL AST (promql-parser, Prometheus' own grammar); Grafana variables filled in."""
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    try:
        return promql_parser.parse(expr)
    except ValueError as exc:
        pytest.fail(f"PromQL syntax error ({exc}) in: {expr}")


def walk(node: Any) -> Iterator[Any]:
    yield node
    for attr in ("lhs", "rhs", "expr", "param", "vector_selector"):
        child = getattr(node, attr, None)
        if child is not None and not isinstance(child, str | int | float):
            yield from walk(child)
    if isinstance(node, promql_parser.Call):
        for arg in node.args:
            yield from walk(arg)


def selectors(node: Any) -> list[Any]:
    return [n for n in walk(node) if isinstance(n, promql_parser.VectorSelector)]


def used_metrics(expr: str) -> set[str]:
    return {s.name for s in selectors(parse(expr)) if s.name}


def check_expr(expr: str) -> list[str]:
    """Metric names, matcher labels and grouping labels of `expr` against the export."""
    problems = []
    series = exported()
    tree = parse(expr)
    for selector in selectors(tree):
        name = selector.name or ""
        if not name.startswith("pandagpt_"):
            continue
        if name not in series:
            problems.append(f"{name} is not exported by service.metrics ({expr})")
            continue
        for matcher in selector.matchers.matchers:
            if matcher.name not in series[name][1] | TARGET_LABELS:
                problems.append(f"{name} has no label {matcher.name!r} ({expr})")
    for node in walk(tree):
        if isinstance(node, promql_parser.AggregateExpr) and node.modifier is not None:
            inner = [s.name for s in selectors(node.expr) if s.name in series]
            known = set().union(*(series[n][1] for n in inner)) | TARGET_LABELS
            for label in node.modifier.labels:
                if label not in known:
                    problems.append(f"grouping label {label!r} is on none of {inner} ({expr})")
    return problems


def test_alerts_use_exported_metrics_and_labels() -> None:
    exprs = alert_exprs()
    assert exprs
    problems = [p for e in exprs for p in check_expr(e)]
    assert not problems, "\n".join(problems)


def test_dashboard_uses_exported_metrics_and_labels() -> None:
    exprs = dashboard_exprs()
    assert exprs
    problems = [p for e in exprs for p in check_expr(e)]
    assert not problems, "\n".join(problems)


def test_dashboard_covers_every_exported_metric() -> None:
    used = set().union(*(used_metrics(e) for e in dashboard_exprs()))
    families = {family for family, _ in exported().values()}
    shown = {exported()[name][0] for name in used if name in exported()}
    missing = families - shown
    assert not missing, f"add panels for {sorted(missing)} in deploy/grafana/build_dashboard.py"


def test_chart_autoscaling_metrics_are_exported(render) -> None:
    manifests = render(*profile_args(CHART / "ci" / "external-redis-keda-values.yaml"))
    (scaled,) = find(manifests, "ScaledObject")
    assert not check_expr(scaled["spec"]["triggers"][0]["metadata"]["query"])
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert f"{values['worker']['autoscaling']['hpa']['metricName']}" in exported()


# --- copies the chart carries ---


def test_chart_copies_match_deploy_files() -> None:
    files = CHART / "files"
    assert (files / "alerts.yaml").read_bytes() == ALERTS.read_bytes(), (
        "cp deploy/prometheus/alerts.yaml helm/pandagpt/files/alerts.yaml"
    )
    assert (files / "pandagpt-dashboard.json").read_bytes() == DASHBOARD.read_bytes()


def test_dashboard_is_the_generator_output() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "build_dashboard", ROOT / "deploy" / "grafana" / "build_dashboard.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert DASHBOARD.read_text() == module.render(), "run python deploy/grafana/build_dashboard.py"
    assert len({p["id"] for p in json.loads(DASHBOARD.read_text())["panels"]}) == len(
        json.loads(DASHBOARD.read_text())["panels"]
    )
