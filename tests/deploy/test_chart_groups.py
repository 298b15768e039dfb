"""Worker groups in the Helm chart: the two-model profile renders one Deployment, Service,
PDB and autoscaler per model, and the gateway is given every group's Service; without
groups the chart renders the single worker exactly as before (names, selectors)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.deploy.conftest import CHART, RELEASE, containers, find, profile_args, run_helm

TWO_MODELS = CHART / "ci" / "two-models-values.yaml"
GROUP_LABEL = "pandagpt.io/worker-group"


def env_of(deployment: dict[str, Any]) -> dict[str, str | None]:
    main = next(c for c in containers(deployment) if c["name"] == "worker")
    return {e["name"]: e.get("value") for e in main["env"]}


def test_two_model_profile_renders_one_worker_group_per_model(render) -> None:
    manifests = render(*profile_args(TWO_MODELS))
    workers = {
        d["metadata"]["labels"][GROUP_LABEL]: d for d in find(manifests, "Deployment", "worker")
    }
    assert sorted(workers) == ["pandagpt-13b", "pandagpt-7b"]
    small, large = workers["pandagpt-7b"], workers["pandagpt-13b"]
    assert env_of(small)["PANDAGPT_SERVED_MODEL_NAME"] == "pandagpt-7b"
    assert env_of(large)["PANDAGPT_SERVED_MODEL_NAME"] == "pandagpt-13b"
    assert env_of(small)["PANDAGPT_MODEL_DIR"] == "/models/pandagpt-7b"
    assert env_of(large)["PANDAGPT_MODEL_DIR"] == "/models/pandagpt-13b"
    assert env_of(large)["PANDAGPT_TENSOR_PARALLEL_SIZE"] == "2"
    assert env_of(small)["PANDAGPT_DTYPE"] == env_of(large)["PANDAGPT_DTYPE"] == "float16"  # shared
    gpus = {
        name: next(c for c in containers(d) if c["name"] == "worker")["resources"]["limits"]
        for name, d in workers.items()
    }
    assert (
        gpus["pandagpt-7b"]["nvidia.com/gpu"] == 1 and gpus["pandagpt-13b"]["nvidia.com/gpu"] == 2
    )
    assert gpus["pandagpt-13b"]["memory"] == "96Gi"
    inits = {
        name: {
            e["name"]: e.get("value")
            for e in d["spec"]["template"]["spec"]["initContainers"][0]["env"]
        }
        for name, d in workers.items()
    }
    assert inits["pandagpt-13b"]["VARIANT"] == "13b_max_len_400"
    assert inits["pandagpt-13b"]["VICUNA_DIR"] == "/models/vicuna-13b"
    assert inits["pandagpt-7b"]["MODEL_DIR"] == "/models/pandagpt-7b"
    assert large["spec"]["template"]["spec"]["nodeSelector"] == {  # maps merge over worker.*
        "nvidia.com/gpu.present": "true",
        "nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB",
    }
    assert "replicas" not in small["spec"] and large["spec"]["replicas"] == 1  # KEDA owns 7B's

    # Each Service selects its own group's pods only, and the gateway is given both.
    services = {s["metadata"]["name"]: s for s in find(manifests, "Service", "worker")}
    for name, deployment in workers.items():
        service = services[deployment["metadata"]["name"]]
        assert service["spec"]["selector"][GROUP_LABEL] == name
        assert deployment["spec"]["selector"]["matchLabels"][GROUP_LABEL] == name
    (gateway,) = find(manifests, "Deployment", "gateway")
    gateway_env = {e["name"]: e.get("value") for e in containers(gateway)[0]["env"]}
    urls = gateway_env["PANDAGPT_WORKER_URLS"]
    assert urls is not None
    assert sorted(urls.split(",")) == sorted(
        f"http://{name}:{s['spec']['ports'][0]['port']}" for name, s in services.items()
    )

    (scaled,) = find(manifests, "ScaledObject")
    assert scaled["spec"]["scaleTargetRef"]["name"] == small["metadata"]["name"]
    query = scaled["spec"]["triggers"][0]["metadata"]["query"]
    assert f'worker="http://{small["metadata"]["name"]}:8001"' in query  # its own model's load
    pdbs = find(manifests, "PodDisruptionBudget", "worker")
    assert sorted(p["spec"]["selector"]["matchLabels"][GROUP_LABEL] for p in pdbs) == sorted(
        workers
    )


def test_without_groups_the_single_worker_is_unchanged(render) -> None:
    manifests = render()
    (worker,) = find(manifests, "Deployment", "worker")
    assert worker["metadata"]["name"] == f"{RELEASE}-pandagpt-worker"
    assert GROUP_LABEL not in worker["spec"]["selector"]["matchLabels"]
    assert "PANDAGPT_SERVED_MODEL_NAME" not in env_of(worker)  # the manifest's name


def test_duplicate_group_names_are_refused(helm: Path) -> None:
    proc = run_helm(
        helm, "template", RELEASE, str(CHART), *profile_args(TWO_MODELS),
        "--set", "worker.groups[1].name=pandagpt-7b",
    )  # fmt: skip
    assert proc.returncode != 0
    assert 'two groups named "pandagpt-7b"' in proc.stderr
    proc = run_helm(
        helm, "template", RELEASE, str(CHART), "--set", "worker.groups[0].name=Big_Model"
    )
    assert proc.returncode != 0 and "name" in proc.stderr
