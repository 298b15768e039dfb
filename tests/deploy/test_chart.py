"""The Helm chart: lint, render every CI profile, validate each manifest offline against
the Kubernetes schemas, check the CRD objects by hand, and check the values guards."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest

from tests.deploy.conftest import (
    CHART,
    PROFILES,
    RELEASE,
    ROOT,
    containers,
    find,
    profile_args,
    run_helm,
)

PROFILE_IDS = [p.name.removesuffix("-values.yaml") for p in PROFILES]
# Oldest Kubernetes the chart supports (Chart.yaml kubeVersion) and the newest schemas we have.
KUBE_VERSIONS = ("1.27", kubernetes_validate.latest_version())
CRD_KINDS = {"ScaledObject", "ServiceMonitor", "PrometheusRule"}


def test_the_four_profiles_exist() -> None:
    assert set(PROFILE_IDS) >= {
        "default",
        "external-redis-keda",
        "ingress-monitoring-netpol",
        "single-gpu-minimal",
    }


@pytest.mark.parametrize("profile", PROFILES, ids=PROFILE_IDS)
def test_lint_strict(helm: Path, profile: Path) -> None:
    proc = run_helm(helm, "lint", "--strict", str(CHART), *profile_args(profile))
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("profile", PROFILES, ids=PROFILE_IDS)
def test_manifests_validate_against_kubernetes_schemas(render, profile: Path) -> None:
    manifests = render(*profile_args(profile))
    errors = []
    for manifest in manifests:
        if manifest["kind"] in CRD_KINDS:
            continue
        for version in KUBE_VERSIONS:
            try:
                kubernetes_validate.validate(manifest, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                path = ".".join(str(p) for p in exc.path)
                errors.append(
                    f"{manifest['kind']}/{manifest['metadata']['name']} @{version}: "
                    f"{path}: {exc.message}"
                )
    assert not errors, "\n".join(errors)
    unknown = {m["kind"] for m in manifests} - CRD_KINDS
    for kind in unknown:  # every non-CRD kind must have had a schema
        sample = next(m for m in manifests if m["kind"] == kind)
        kubernetes_validate.validate(sample, KUBE_VERSIONS[0], strict=True)


def test_profiles_render_every_template(helm: Path) -> None:
    rendered = set()
    for profile in PROFILES:
        proc = run_helm(helm, "template", RELEASE, str(CHART), *profile_args(profile))
        rendered |= set(re.findall(r"^# Source: pandagpt/templates/(\S+)$", proc.stdout, re.M))
    base = CHART / "templates"
    templates = {str(p.relative_to(base)) for p in base.rglob("*.yaml")} - {"validate.yaml"}
    assert templates - rendered == set(), "no CI profile renders these templates"


def test_profiles_cover_every_kind(render) -> None:
    kinds = set()
    for profile in PROFILES:
        kinds |= {m["kind"] for m in render(*profile_args(profile))}
    assert kinds >= {
        "Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "Ingress",
        "StatefulSet", "Secret", "ConfigMap", "PersistentVolumeClaim", "ServiceAccount",
        "NetworkPolicy", *CRD_KINDS,
    }  # fmt: skip


# --- CRD objects: no schema ships for them, so check the fields their controllers need ---


def test_keda_scaled_object(render) -> None:
    manifests = render(*profile_args(CHART / "ci" / "external-redis-keda-values.yaml"))
    (so,) = find(manifests, "ScaledObject")
    assert so["apiVersion"] == "keda.sh/v1alpha1"
    (worker,) = find(manifests, "Deployment", "worker")
    target = so["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", worker["metadata"]["name"])
    assert "replicas" not in worker["spec"], "the autoscaler owns the worker replica count"
    assert 0 <= so["spec"]["minReplicaCount"] <= so["spec"]["maxReplicaCount"]
    (trigger,) = so["spec"]["triggers"]
    assert trigger["type"] == "prometheus"
    meta = trigger["metadata"]
    assert meta["serverAddress"].startswith("http")
    assert isinstance(meta["threshold"], str) and float(meta["threshold"]) > 0
    assert "pandagpt_requests_waiting" in meta["query"]
    assert f'service="{RELEASE}-pandagpt-gateway"' in meta["query"]


def test_service_monitor_selects_gateway_and_worker_services(render) -> None:
    manifests = render(*profile_args(CHART / "ci" / "ingress-monitoring-netpol-values.yaml"))
    (sm,) = find(manifests, "ServiceMonitor")
    assert sm["apiVersion"] == "monitoring.coreos.com/v1"
    assert sm["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    (endpoint,) = sm["spec"]["endpoints"]
    assert endpoint["path"] == "/metrics" and endpoint["port"] == "http"
    selected = []
    for service in find(manifests, "Service"):
        labels = service["metadata"]["labels"]
        if all(
            labels.get(e["key"]) in e["values"] for e in sm["spec"]["selector"]["matchExpressions"]
        ):
            assert "http" in {p["name"] for p in service["spec"]["ports"]}
            selected.append(labels["app.kubernetes.io/component"])
    assert sorted(selected) == ["gateway", "worker"]


def test_prometheus_rule_carries_the_alert_file(render) -> None:
    import yaml

    manifests = render(*profile_args(CHART / "ci" / "ingress-monitoring-netpol-values.yaml"))
    (rule,) = find(manifests, "PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    expected = yaml.safe_load((ROOT / "deploy" / "prometheus" / "alerts.yaml").read_text())
    assert rule["spec"] == expected
    for group in rule["spec"]["groups"]:
        assert group["name"] and group["rules"]
        for r in group["rules"]:
            assert r["alert"] and r["expr"] and r["labels"]["severity"] in {"warning", "critical"}
            assert r["annotations"]["summary"]


def test_gpu_worker_pod(render) -> None:
    manifests = render(*profile_args(CHART / "ci" / "external-redis-keda-values.yaml"))
    (worker,) = find(manifests, "Deployment", "worker")
    pod = worker["spec"]["template"]["spec"]
    main = next(c for c in pod["containers"] if c["name"] == "worker")
    assert main["resources"]["limits"]["nvidia.com/gpu"] == 2
    assert main["resources"]["requests"]["nvidia.com/gpu"] == 2
    env = {e["name"]: e.get("value") for e in main["env"]}
    assert env["PANDAGPT_TENSOR_PARALLEL_SIZE"] == "2"
    assert env["PANDAGPT_MAX_MODEL_LEN"] == "1024"
    assert env["PANDAGPT_REDIS_URL"] == (
        "rediss://:$(REDIS_PASSWORD)@redis.cache.svc.cluster.local:6380/2"
    )
    names = [e["name"] for e in main["env"]]
    assert names.index("REDIS_PASSWORD") < names.index("PANDAGPT_REDIS_URL")  # $(VAR) expands
    shm = next(v for v in pod["volumes"] if v["name"] == "dshm")
    assert shm["emptyDir"] == {"medium": "Memory", "sizeLimit": "16Gi"}
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert pod["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert {"startupProbe", "readinessProbe", "livenessProbe"} <= set(main)


def _quantity_bytes(quantity: str) -> int:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 10**3, "M": 10**6, "G": 10**9}
    number = re.match(r"\d+", quantity)
    assert number is not None, quantity
    return int(number.group()) * units.get(quantity[number.end() :], 1)


@pytest.mark.parametrize("profile", PROFILES, ids=PROFILE_IDS)
def test_memory_budgets_fit_the_memory_limits(render, profile: Path) -> None:
    # The budget for request data is sized from the container's limit (or set to at most
    # half of it): every gateway and worker container has one.
    for component in ("gateway", "worker"):
        deployments = find(render(*profile_args(profile)), "Deployment", component)
        assert deployments, component
        for deployment in deployments:  # one per worker group
            main = next(c for c in containers(deployment) if c["name"] == component)
            limit = _quantity_bytes(main["resources"]["limits"]["memory"])
            env = {e["name"]: e.get("value") for e in main.get("env", [])}
            budget = env.get("PANDAGPT_MEMORY_BUDGET_BYTES")
            assert budget is None or 2 * int(budget) <= limit, (component, budget, limit)


def test_memory_budget_over_half_the_limit_or_no_limit_is_refused(helm: Path, render) -> None:
    over = ("--set", "gateway.settings.memory_budget_bytes=1500000000")
    proc = run_helm(helm, "template", RELEASE, str(CHART), *over)
    assert proc.returncode != 0
    assert "--set gateway.settings.memory_budget_bytes=1073741824" in proc.stderr, proc.stderr
    proc = run_helm(helm, "template", RELEASE, str(CHART), "--set", "worker.resources.limits=null")
    assert proc.returncode != 0 and "--set worker.resources.limits.memory=" in proc.stderr
    fits = render("--set", "gateway.settings.memory_budget_bytes=1000000000")
    (gateway,) = find(fits, "Deployment", "gateway")
    env = {e["name"]: e.get("value") for e in containers(gateway)[0]["env"]}
    assert env["PANDAGPT_MEMORY_BUDGET_BYTES"] == "1000000000"


def test_default_worker_has_init_container_and_weights_claim(render) -> None:
    manifests = render()
    (worker,) = find(manifests, "Deployment", "worker")
    pod = worker["spec"]["template"]["spec"]
    (init,) = pod["initContainers"]
    assert init["command"] == ["/bin/sh", "/scripts/prepare-weights.sh"]
    (pvc,) = find(manifests, "PersistentVolumeClaim")
    weights = next(v for v in pod["volumes"] if v["name"] == "weights")
    assert weights["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"]
    assert pvc["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"


def test_minimal_profile_uses_existing_claim_without_init(render) -> None:
    manifests = render(*profile_args(CHART / "ci" / "single-gpu-minimal-values.yaml"))
    assert not find(manifests, "PersistentVolumeClaim")
    assert not find(manifests, "PodDisruptionBudget") and not find(manifests, "Secret")
    (worker,) = find(manifests, "Deployment", "worker")
    pod = worker["spec"]["template"]["spec"]
    assert "initContainers" not in pod
    weights = next(v for v in pod["volumes"] if v["name"] == "weights")
    assert weights["persistentVolumeClaim"]["claimName"] == "pandagpt-weights"


def test_pods_are_locked_down(render) -> None:
    for profile in PROFILES:
        for manifest in render(*profile_args(profile)):
            if manifest["kind"] not in {"Deployment", "StatefulSet"}:
                continue
            pod = manifest["spec"]["template"]["spec"]
            assert pod["securityContext"]["runAsNonRoot"] is True
            assert pod["automountServiceAccountToken"] is False
            mounts_tmp = False
            for c in containers(manifest):
                sc = c["securityContext"]
                assert sc["readOnlyRootFilesystem"] is True, c["name"]
                assert sc["allowPrivilegeEscalation"] is False, c["name"]
                assert sc["capabilities"]["drop"] == ["ALL"], c["name"]
                assert c["resources"]["requests"], f"{c['name']} has no resource requests"
                mounts_tmp |= any(m["mountPath"] == "/tmp" for m in c.get("volumeMounts", []))
            assert mounts_tmp or manifest["kind"] == "StatefulSet", manifest["metadata"]["name"]


def test_network_policies(render) -> None:
    manifests = render(*profile_args(CHART / "ci" / "ingress-monitoring-netpol-values.yaml"))
    policies = {p["metadata"]["labels"]["app.kubernetes.io/component"]: p for p in
                find(manifests, "NetworkPolicy")}  # fmt: skip
    assert set(policies) == {"gateway", "worker", "redis"}
    worker_from = policies["worker"]["spec"]["ingress"][0]["from"]
    gateway_pods = [p for p in worker_from if "podSelector" in p]
    assert gateway_pods[0]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "gateway"
    redis_from = policies["redis"]["spec"]["ingress"][0]["from"]
    assert sorted(p["podSelector"]["matchLabels"]["app.kubernetes.io/component"]
                  for p in redis_from) == ["gateway", "worker"]  # fmt: skip
    gateway_from = policies["gateway"]["spec"]["ingress"][0]["from"]
    assert {"kubernetes.io/metadata.name": "ingress-nginx"} in [
        p.get("namespaceSelector", {}).get("matchLabels") for p in gateway_from
    ]


# --- secrets: one helper decides between an existing Secret and a created one ---


def test_api_keys_secret_created_or_existing(render) -> None:
    created = render()
    (secret,) = [s for s in find(created, "Secret") if s["metadata"]["name"].endswith("api-keys")]
    existing = render(*profile_args(CHART / "ci" / "external-redis-keda-values.yaml"))
    assert not find(existing, "Secret")
    (gateway,) = find(existing, "Deployment", "gateway")
    volumes = gateway["spec"]["template"]["spec"]["volumes"]
    keys = next(v for v in volumes if v["name"] == "api-keys")
    assert keys["secret"]["secretName"] == "pandagpt-api-keys"
    (gateway,) = find(created, "Deployment", "gateway")
    volumes = gateway["spec"]["template"]["spec"]["volumes"]
    keys = next(v for v in volumes if v["name"] == "api-keys")
    assert keys["secret"]["secretName"] == secret["metadata"]["name"]


def _token_env(deployment: dict) -> list[dict]:
    return [
        env
        for c in deployment["spec"]["template"]["spec"]["containers"]
        for env in c.get("env", [])
        if env["name"] == "PANDAGPT_WORKER_TOKEN"
    ]


def test_worker_token_reaches_gateway_and_worker_from_one_secret(render) -> None:
    import base64

    created = render()
    (secret,) = [s for s in find(created, "Secret") if "worker-token" in s["data"]]
    assert len(base64.b64decode(secret["data"]["worker-token"])) == 48
    for component in ("gateway", "worker"):
        (deployment,) = find(created, "Deployment", component)
        (env,) = _token_env(deployment)
        ref = env["valueFrom"]["secretKeyRef"]
        assert ref == {"name": secret["metadata"]["name"], "key": "worker-token"}, component
    existing = render(*profile_args(CHART / "ci" / "external-redis-keda-values.yaml"))
    for component in ("gateway", "worker"):
        (deployment,) = find(existing, "Deployment", component)
        (env,) = _token_env(deployment)
        assert env["valueFrom"]["secretKeyRef"] == {"name": "pandagpt-worker-token", "key": "token"}
    off = render(*profile_args(CHART / "ci" / "single-gpu-minimal-values.yaml"))
    assert not any(_token_env(d) for d in find(off, "Deployment"))


def test_given_api_keys_are_stored_one_per_line(render) -> None:
    import base64

    manifests = render(*profile_args(CHART / "ci" / "ingress-monitoring-netpol-values.yaml"))
    (secret,) = [s for s in find(manifests, "Secret") if "api-keys" in s["data"]]
    assert base64.b64decode(secret["data"]["api-keys"]).decode() == (
        "sk-0123456789abcdef\nsk-fedcba9876543210"
    )


def test_tracing_env_reaches_every_pandagpt_container(render) -> None:
    traced = render(*profile_args(CHART / "ci" / "ingress-monitoring-netpol-values.yaml"))
    deployments = find(traced, "Deployment", "gateway") + find(traced, "Deployment", "worker")
    assert len(deployments) >= 2
    for deployment in deployments:
        (container,) = [c for c in containers(deployment) if c["name"] in ("gateway", "worker")]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector.observability:4317"
        assert env["OTEL_EXPORTER_OTLP_PROTOCOL"] == "grpc"
        assert env["OTEL_TRACES_SAMPLER"] == "parentbased_traceidratio"
        assert env["OTEL_TRACES_SAMPLER_ARG"] == "0.1"
        attributes = dict(kv.split("=", 1) for kv in env["OTEL_RESOURCE_ATTRIBUTES"].split(","))
        assert attributes["cluster"] == "gpu-eu-1"
        assert attributes["service.namespace"]
    # Off by default: no OTEL_* variable at all.
    for deployment in find(render(), "Deployment"):
        for container in containers(deployment):
            assert not [e for e in container.get("env", []) if e["name"].startswith("OTEL_")]


# --- values guards: the schema refuses wrong types, validateValues cross-field mistakes ---


@pytest.mark.parametrize(
    ("setting", "complaint"),
    [
        ("worker.engine.tensorParallelSize=two", "tensorParallelSize"),
        ("worker.engine.dtype=fp8", "dtype"),
        ("gateway.autoscaling.enabled=yes", "autoscaling/enabled"),
        ("worker.engin.dtype=float16", "engin"),
        ("weights.persistence.size=lots", "size"),
        ("tracing.protocol=http/json", "protocol"),
    ],
)
def test_schema_rejects_wrong_values(helm: Path, setting: str, complaint: str) -> None:
    # --set-string keeps helm from coercing "yes"/"two" itself: the schema must refuse them.
    proc = run_helm(helm, "template", RELEASE, str(CHART), "--set-string", setting)
    assert proc.returncode != 0
    assert "schema" in proc.stderr and complaint in proc.stderr, proc.stderr


def test_schema_rejects_a_values_file_with_a_wrong_type(helm: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad-values.yaml"
    bad.write_text('worker:\n  replicaCount: "3"\n  engine:\n    gpuMemoryUtilization: 1.5\n')
    proc = run_helm(helm, "template", RELEASE, str(CHART), "-f", str(bad))
    assert proc.returncode != 0
    assert "replicaCount" in proc.stderr and "gpuMemoryUtilization" in proc.stderr, proc.stderr


def test_validate_values_lists_every_error_with_its_fix(helm: Path) -> None:
    proc = run_helm(
        helm, "template", RELEASE, str(CHART),
        "--set", "redis.enabled=false",
        "--set", "worker.autoscaling.keda.enabled=true",
        "--set", "worker.autoscaling.hpa.enabled=true",
        "--set", "gateway.autoscaling.minReplicas=5,gateway.autoscaling.maxReplicas=2",
    )  # fmt: skip
    assert proc.returncode != 0
    message = proc.stderr
    errors = [line for line in message.splitlines() if line.startswith("  - ")]
    assert len(errors) == 3 and all("--set " in line for line in errors), message
    for key in ("redis.external.url", "worker.autoscaling.hpa.enabled", "maxReplicas"):
        assert key in message, message


def test_refuses_a_public_api_without_keys(helm: Path) -> None:
    args = ("--set", "ingress.enabled=true", "--set", "apiKeys.enabled=false")
    proc = run_helm(helm, "template", RELEASE, str(CHART), *args)
    assert proc.returncode != 0 and "--set apiKeys.enabled=true" in proc.stderr
    proc = run_helm(helm, "template", RELEASE, str(CHART), *args, "--set", "environment=dev")
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            [
                "worker.autoscaling.keda.enabled=true",
                "worker.autoscaling.keda.prometheusServerAddress=",
            ],
            "prometheusServerAddress is required",
        ),
        (["worker.image.repository="], "an image repository is required"),
        (["weights.modelSubPath="], "weights.modelSubPath is required"),
    ],
)
def test_required_values(helm: Path, settings: list[str], message: str) -> None:
    args = [arg for setting in settings for arg in ("--set", setting)]
    proc = run_helm(helm, "template", RELEASE, str(CHART), *args)
    assert proc.returncode != 0 and message in proc.stderr, proc.stderr


def test_notes_give_the_first_request(helm: Path) -> None:
    proc = run_helm(helm, "install", RELEASE, str(CHART), "--dry-run=client", "-n", "serving")
    assert proc.returncode == 0, proc.stderr
    assert "/v1/chat/completions" in proc.stdout
    assert "port-forward svc/pgpt-pandagpt-gateway" in proc.stdout
    assert "Authorization: Bearer $PANDAGPT_API_KEY" in proc.stdout


def test_values_docs_and_schema_are_generated() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen-chart-docs.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_helpers_are_prefixed_and_commented() -> None:
    text = (CHART / "templates" / "_helpers.tpl").read_text().splitlines()
    for i, line in enumerate(text):
        if line.startswith("{{- define "):
            name = line.split('"')[1]
            assert name.startswith("pandagpt."), name
            assert text[i - 1].startswith(f"{{{{/* {name}: "), f"{name} lacks a one-line comment"


def test_helm_test_pod_checks_readiness_with_a_key(render) -> None:
    (pod,) = [m for m in render() if m["kind"] == "Pod"]
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    (check,) = pod["spec"]["containers"]
    script = check["command"][-1]
    assert "/health/ready" in script and "/v1/models" in script
    (gateway,) = find(render(), "Deployment", "gateway")
    assert check["image"] == gateway["spec"]["template"]["spec"]["containers"][0]["image"]
    assert pod["spec"]["volumes"][0]["secret"]["items"][0]["path"] == "key"
