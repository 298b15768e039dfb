"""Generates helm/pandagpt/values.schema.json and the values table of the chart README
from values.yaml and its `# --` doc comments (our small helm-docs + schema generator).

    python scripts/gen-chart-docs.py          # rewrite both files
    python scripts/gen-chart-docs.py --check  # exit 1 if either is stale (tests run this)

Rules: a key with its own `# --` comment is one documented value; if that value is a
map or a list it is free-form (resources, affinity, annotations...). A key without a
comment is a section: its children are documented one by one, and the schema refuses
unknown keys inside it (typos such as `worker.engin.dtype` fail at install).
Types come from the defaults; CONSTRAINTS adds enums, bounds and patterns.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

CHART = Path(__file__).resolve().parents[1] / "helm" / "pandagpt"
VALUES = CHART / "values.yaml"
SCHEMA = CHART / "values.schema.json"
README = CHART / "README.md"
BEGIN, END = "<!-- values-table:begin -->", "<!-- values-table:end -->"

_QUANTITY = r"^[0-9]+(\.[0-9]+)?(m|k|Ki|M|Mi|G|Gi|T|Ti)?$"
_PORT = {"minimum": 1, "maximum": 65535}
CONSTRAINTS: dict[str, dict[str, Any]] = {
    "environment": {"enum": ["dev", "staging", "production"]},
    "image.pullSecrets": {"items": {"type": "string"}},
    "apiKeys.keys": {"items": {"type": "string", "minLength": 8}},
    "image.pullPolicy": {"enum": ["Always", "IfNotPresent", "Never"]},
    "gateway.replicaCount": {"minimum": 0},
    "gateway.port": _PORT,
    "gateway.service.port": _PORT,
    "gateway.service.type": {"enum": ["ClusterIP", "NodePort", "LoadBalancer"]},
    "gateway.image.digest": {"pattern": "^(sha256:[a-f0-9]{64})?$"},
    "gateway.autoscaling.minReplicas": {"minimum": 1},
    "gateway.autoscaling.maxReplicas": {"minimum": 1},
    "gateway.autoscaling.targetCPUUtilizationPercentage": {"minimum": 1, "maximum": 100},
    "gateway.terminationGracePeriodSeconds": {"minimum": 0},
    "worker.replicaCount": {"minimum": 0},
    "worker.groups": {
        "items": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?$"},
                "weights": {"type": "object"},
            },
        }
    },
    "worker.port": _PORT,
    "worker.service.port": _PORT,
    "worker.image.digest": {"pattern": "^(sha256:[a-f0-9]{64})?$"},
    "worker.engine.tensorParallelSize": {"minimum": 1},
    "worker.engine.dtype": {"enum": ["auto", "float16", "bfloat16", "float32"]},
    "worker.engine.maxModelLen": {"minimum": 0},
    "worker.engine.gpuMemoryUtilization": {"exclusiveMinimum": 0, "maximum": 1},
    "worker.engine.maxNumSeqs": {"minimum": 1},
    "worker.admission.maxQueueSize": {"minimum": 0},
    "worker.admission.requestTimeoutSeconds": {"type": "number", "exclusiveMinimum": 0},
    "worker.encoder.maxBatchSize": {"minimum": 1},
    "worker.encoder.maxWaitMs": {"type": "number", "minimum": 0},
    "worker.encoder.preprocessWorkers": {"minimum": 1},
    "worker.shmSize": {"pattern": _QUANTITY},
    "worker.terminationGracePeriodSeconds": {"minimum": 0},
    "worker.autoscaling.keda.minReplicaCount": {"minimum": 0},
    "worker.autoscaling.keda.maxReplicaCount": {"minimum": 1},
    "worker.autoscaling.hpa.minReplicas": {"minimum": 1},
    "worker.autoscaling.hpa.maxReplicas": {"minimum": 1},
    "weights.mountPath": {"pattern": "^/"},
    "weights.persistence.size": {"pattern": _QUANTITY},
    "weights.persistence.accessModes": {
        "items": {"enum": ["ReadWriteOnce", "ReadWriteMany", "ReadOnlyMany", "ReadWriteOncePod"]},
        "minItems": 1,
    },
    "weights.init.variant": {
        "enum": ["7b_max_len_512", "7b_max_len_1024", "13b_max_len_256", "13b_max_len_400"]
    },
    "redis.maxmemory": {"pattern": "^[0-9]+(b|kb|mb|gb|k|m|g)?$"},
    "redis.external.url": {"pattern": "^(rediss?://.+)?$"},
    "metrics.serviceMonitor.interval": {"pattern": "^[0-9]+(ms|s|m|h)$"},
    "tracing.protocol": {"enum": ["http/protobuf", "grpc"]},
    "tracing.sampler": {
        "enum": [
            "always_on",
            "always_off",
            "traceidratio",
            "parentbased_always_on",
            "parentbased_always_off",
            "parentbased_traceidratio",
        ]
    },
}
# Numbers that users reasonably give as strings too (KEDA and HPA take strings).
_NUMBER_OR_STRING = {
    "worker.autoscaling.keda.threshold",
    "worker.autoscaling.hpa.targetAverageValue",
}


@dataclass
class Entry:
    path: str
    value: Any
    doc: str
    section: str


def parse_docs(text: str) -> tuple[dict[str, str], dict[str, str]]:
    """(dotted key -> doc comment, dotted key -> section) from the values file's lines."""
    docs: dict[str, str] = {}
    sections: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    pending: list[str] = []
    section = "Global"
    skip_deeper_than: int | None = None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("## @section"):
            section = stripped.removeprefix("## @section").strip()
            continue
        if stripped.startswith("# --"):
            pending = [stripped.removeprefix("# --").strip()]
            continue
        if stripped.startswith("#") or not stripped:
            continue
        indent = len(line) - len(line.lstrip())
        if skip_deeper_than is not None:
            if indent > skip_deeper_than or stripped.startswith("- "):
                continue
            skip_deeper_than = None
        m = re.match(r"^([A-Za-z_][\w-]*):(.*)$", stripped)
        if not m:
            continue
        while stack and stack[-1][0] >= indent:
            stack.pop()
        path = ".".join([k for _, k in stack] + [m.group(1)])
        sections[path] = section
        if pending:
            docs[path] = " ".join(pending)
            pending = []
            skip_deeper_than = indent  # a documented value is opaque below
        stack.append((indent, m.group(1)))
    return docs, sections


def entries(values: dict[str, Any], docs: dict[str, str], sections: dict[str, str]) -> list[Entry]:
    out: list[Entry] = []

    def walk(node: dict[str, Any], prefix: str) -> None:
        for key, value in node.items():
            path = f"{prefix}{key}"
            if path in docs:
                out.append(Entry(path, value, docs[path], sections[path]))
            elif isinstance(value, dict) and value:
                walk(value, path + ".")
            else:
                raise SystemExit(f"values.yaml: {path} has no `# --` doc comment")

    walk(values, "")
    return out


def type_schema(path: str, value: Any) -> dict[str, Any]:
    if path in _NUMBER_OR_STRING:
        schema: dict[str, Any] = {"type": ["string", "number"]}
    elif isinstance(value, bool):
        schema = {"type": "boolean"}
    elif isinstance(value, int):
        schema = {"type": "integer"}
    elif isinstance(value, float):
        schema = {"type": "number"}
    elif isinstance(value, str):
        schema = {"type": "string"}
    elif isinstance(value, list):
        schema = {"type": "array"}
        if value and all(isinstance(v, str) for v in value):
            schema["items"] = {"type": "string"}
    elif isinstance(value, dict):
        schema = {"type": "object"}
    elif value is None:
        schema = {}
    else:
        raise SystemExit(f"values.yaml: {path}: unsupported default {value!r}")
    return {**schema, **CONSTRAINTS.get(path, {})}


def build_schema(values: dict[str, Any], items: list[Entry]) -> dict[str, Any]:
    root: dict[str, Any] = {
        "$schema": "https://json-schema.org/draft-07/schema#",
        "title": "pandagpt chart values",
        "type": "object",
        "additionalProperties": False,
        "properties": {"global": {"type": "object"}},
    }
    for item in items:
        node = root
        *parents, leaf = item.path.split(".")
        for part in parents:
            node = node["properties"].setdefault(
                part, {"type": "object", "additionalProperties": False, "properties": {}}
            )
        node["properties"][leaf] = {"description": item.doc, **type_schema(item.path, item.value)}
    unknown = set(CONSTRAINTS) | _NUMBER_OR_STRING
    unknown -= {item.path for item in items}
    if unknown:
        raise SystemExit(f"CONSTRAINTS names keys that values.yaml lacks: {sorted(unknown)}")
    return root


def build_table(items: list[Entry]) -> str:
    lines: list[str] = []
    section = None
    for item in items:
        if item.section != section:
            section = item.section
            lines += ["", f"### {section}", "", "| Key | Type | Default | Description |"]
            lines.append("|---|---|---|---|")
        kind = type_schema(item.path, item.value).get("type", "any")
        kind = " or ".join(kind) if isinstance(kind, list) else kind
        default = json.dumps(item.value, separators=(",", ":")).replace("|", "\\|")
        doc = item.doc.replace("|", "\\|")
        lines.append(f"| `{item.path}` | {kind} | `{default}` | {doc} |")
    return "\n".join(lines[1:])


def render() -> tuple[str, str]:
    text = VALUES.read_text()
    docs, sections = parse_docs(text)
    items = entries(yaml.safe_load(text), docs, sections)
    schema = json.dumps(build_schema(yaml.safe_load(text), items), indent=2) + "\n"
    readme = README.read_text()
    head, _, rest = readme.partition(BEGIN)
    _, _, tail = rest.partition(END)
    if not rest:
        raise SystemExit(f"{README}: markers {BEGIN} / {END} missing")
    return schema, f"{head}{BEGIN}\n{build_table(items)}\n{END}{tail}"


def main(argv: list[str]) -> int:
    schema, readme = render()
    if "--check" in argv:
        stale = [p.name for p, new in ((SCHEMA, schema), (README, readme)) if p.read_text() != new]
        if stale:
            print(f"stale: {', '.join(stale)}; run python scripts/gen-chart-docs.py")
            return 1
        return 0
    SCHEMA.write_text(schema)
    README.write_text(readme)
    print(f"wrote {SCHEMA.name} and the table in {README.name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
