"""Writes deploy/grafana/pandagpt.json (and the chart's copy) from the panel list below.

Run `python deploy/grafana/build_dashboard.py` after editing; tests/deploy checks that the
committed JSON is this script's output and that every metric it uses is one that
`service.metrics` exports (the names in service/metrics/README.md).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
OUTPUTS = (
    ROOT / "deploy" / "grafana" / "pandagpt.json",
    ROOT / "helm" / "pandagpt" / "files" / "pandagpt-dashboard.json",
)
DS = {"type": "prometheus", "uid": "${datasource}"}
SEL = 'namespace=~"$namespace"'  # matches series without the label too (compose)
RI = "$__rate_interval"
FIVE_XX = 'status=~"5.."'


def rate(metric: str, by: str = "", extra: str = "") -> str:
    labels = f"{SEL},{extra}" if extra else SEL
    group = f" by ({by})" if by else ""
    return f"sum{group} (rate({metric}{{{labels}}}[{RI}]))"


def quantile(q: float, histogram: str, by: str = "") -> str:
    group = f"le,{by}" if by else "le"
    return f"histogram_quantile({q}, {rate(histogram + '_bucket', group)})"


def target(expr: str, legend: str) -> dict[str, Any]:
    return {"datasource": DS, "expr": expr, "legendFormat": legend, "refId": ""}


def panel(title: str, unit: str, targets: list[dict[str, Any]], **options: Any) -> dict[str, Any]:
    kind = options.pop("kind", "timeseries")
    return {
        "type": kind,
        "title": title,
        "description": options.pop("description", ""),
        "datasource": DS,
        "fieldConfig": {"defaults": {"unit": unit, **options.pop("defaults", {})}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
        "targets": targets,
        **options,
    }


def percentiles(histogram: str, by: str = "", label: str = "") -> list[dict[str, Any]]:
    suffix = f" {{{{{label}}}}}" if label else ""
    return [
        target(quantile(q, histogram, by), f"p{round(q * 100)}{suffix}") for q in (0.5, 0.95, 0.99)
    ]


ROWS: list[tuple[str, list[dict[str, Any]]]] = [
    (
        "Traffic",
        [
            panel(
                "Requests by route and status",
                "reqps",
                [
                    target(
                        rate("pandagpt_http_requests_total", "route, status"),
                        "{{route}} {{status}}",
                    )
                ],
            ),
            panel(
                "Error ratio (5xx)",
                "percentunit",
                [
                    target(
                        rate("pandagpt_http_requests_total", extra=FIVE_XX)
                        + " / "
                        + rate("pandagpt_http_requests_total"),
                        "5xx ratio",
                    )
                ],
            ),
            panel(
                "Rejected requests by reason",
                "reqps",
                [target(rate("pandagpt_rejected_requests_total", "reason"), "{{reason}}")],
            ),
            panel(
                "HTTP request duration",
                "s",
                percentiles("pandagpt_http_request_duration_seconds"),
            ),
        ],
    ),
    (
        "Latency",
        [
            panel(
                "Time to first token by model",
                "s",
                percentiles("pandagpt_time_to_first_token_seconds", "model", "model"),
            ),
            panel(
                "Inter-token latency by model",
                "s",
                percentiles("pandagpt_inter_token_latency_seconds", "model", "model"),
            ),
            panel(
                "End-to-end latency by endpoint",
                "s",
                percentiles("pandagpt_e2e_request_latency_seconds", "endpoint", "endpoint"),
            ),
            panel(
                "Outcomes",
                "reqps",
                [
                    target(
                        rate("pandagpt_e2e_request_latency_seconds_count", "outcome"),
                        "{{outcome}}",
                    )
                ],
            ),
            panel("Worker queue time", "s", percentiles("pandagpt_queue_time_seconds")),
        ],
    ),
    (
        "Load and throughput",
        [
            panel(
                "Running and waiting requests",
                "short",
                [
                    target(f"sum(pandagpt_requests_running{{{SEL}}})", "running"),
                    target(f"sum(pandagpt_requests_waiting{{{SEL}}})", "waiting"),
                ],
            ),
            panel(
                "Tokens per second by model",
                "short",
                [
                    target(rate("pandagpt_prompt_tokens_total", "model"), "prompt {{model}}"),
                    target(
                        rate("pandagpt_generation_tokens_total", "model"), "generated {{model}}"
                    ),
                ],
            ),
            panel(
                "Requests by model and outcome",
                "reqps",
                [
                    target(
                        rate("pandagpt_e2e_request_latency_seconds_count", "model, outcome"),
                        "{{model}} {{outcome}}",
                    )
                ],
            ),
        ],
    ),
    (
        "Encoders",
        [
            panel(
                "Encoder batch size (mean) by modality",
                "short",
                [
                    target(
                        f"{rate('pandagpt_encoder_batch_size_sum', 'modality')}"
                        f" / {rate('pandagpt_encoder_batch_size_count', 'modality')}",
                        "{{modality}}",
                    )
                ],
            ),
            panel(
                "Encoder batches per second by modality",
                "ops",
                [target(rate("pandagpt_encoder_batch_size_count", "modality"), "{{modality}}")],
            ),
            panel(
                "Encode latency p95 by modality",
                "s",
                [
                    target(
                        quantile(0.95, "pandagpt_encode_latency_seconds", "modality"),
                        "p95 {{modality}}",
                    )
                ],
            ),
        ],
    ),
    (
        "Embedding cache",
        [
            panel(
                "Cache hit ratio by modality",
                "percentunit",
                [
                    target(
                        f"{rate('pandagpt_cache_hits_total', 'modality')} / "
                        f"({rate('pandagpt_cache_hits_total', 'modality')}"
                        f" + {rate('pandagpt_cache_misses_total', 'modality')})",
                        "{{modality}}",
                    )
                ],
            ),
            panel(
                "Cache errors by operation",
                "ops",
                [target(rate("pandagpt_cache_errors_total", "operation"), "{{operation}}")],
            ),
        ],
    ),
    (
        "Workers and media",
        [
            panel(
                "Worker ready (as the gateways see it)",
                "short",
                [target(f"max by (worker) (pandagpt_worker_healthy{{{SEL}}})", "{{worker}}")],
                defaults={"min": 0, "max": 1},
            ),
            panel(
                "Ready workers per model (as the gateways see them)",
                "short",
                [
                    target(
                        f"min by (model) (pandagpt_model_workers_ready{{{SEL}}})",
                        "{{model}}",
                    )
                ],
                description="0: every worker serving the model is down, and its requests"
                " are answered 503 (split mode).",
                defaults={"min": 0},
            ),
            panel(
                "In-flight requests per worker",
                "short",
                [
                    target(
                        f"sum by (worker) (pandagpt_worker_inflight_requests{{{SEL}}})",
                        "{{worker}}",
                    )
                ],
            ),
            panel(
                "Media fetch failures by reason",
                "ops",
                [target(rate("pandagpt_media_fetch_failures_total", "reason"), "{{reason}}")],
            ),
        ],
    ),
    (
        "API keys: usage and limits",
        [
            panel(
                "Requests by API key",
                "reqps",
                [target(rate("pandagpt_key_requests_total", "key"), "{{key}}")],
                description="Requests that passed their key's limits (the key's name, never"
                " the key).",
            ),
            panel(
                "Tokens by API key",
                "short",
                [
                    target(rate("pandagpt_key_prompt_tokens_total", "key"), "{{key}} prompt"),
                    target(
                        rate("pandagpt_key_completion_tokens_total", "key"), "{{key}} completion"
                    ),
                ],
            ),
            panel(
                "Media items by API key",
                "short",
                [
                    target(
                        rate("pandagpt_key_media_items_total", "key, modality"),
                        "{{key}} {{modality}}",
                    )
                ],
            ),
            panel(
                "429s by API key and reason",
                "reqps",
                [target(rate("pandagpt_key_refusals_total", "key, reason"), "{{key}} {{reason}}")],
                description="requests, tokens, concurrency: the key's limits; busy and"
                " queue_timeout: the gateway's capacity.",
            ),
            panel(
                "Admission queue and rate-limit backend",
                "short",
                [
                    target(f"sum(pandagpt_requests_queued{{{SEL}}})", "queued"),
                    target(
                        f"max(pandagpt_ratelimit_degraded{{{SEL}}})", "limits per pod (Redis down)"
                    ),
                    target(
                        rate("pandagpt_ratelimit_redis_errors_total", "operation"),
                        "redis errors {{operation}}",
                    ),
                ],
                description="Requests waiting for a place at the gateways, by priority; 1 on"
                " `limits per pod` means Redis is unreachable and each gateway counts alone.",
            ),
        ],
    ),
    (
        "Memory and event loop",
        [
            panel(
                "Request data held against the memory budget, per pod",
                "bytes",
                [
                    target(f"max by (pod) (pandagpt_memory_in_use_bytes{{{SEL}}})", "{{pod}}"),
                    target(f"max(pandagpt_memory_budget_bytes{{{SEL}}})", "budget"),
                ],
                description="Bodies and media held by requests in flight; beyond the budget"
                " the pod answers 429 (rejections by reason `memory`).",
            ),
            panel(
                "Event-loop stalls",
                "s",
                [
                    *percentiles("pandagpt_event_loop_lag_seconds"),
                    target(f"max(pandagpt_event_loop_lag_max_seconds{{{SEL}}})", "largest"),
                ],
                description="How late the loop ran a 50 ms timer; every request and probe of"
                " a pod waits out a stall.",
            ),
        ],
    ),
]


def build() -> dict[str, Any]:
    panels: list[dict[str, Any]] = []
    y = 0
    next_id = 1
    for title, row in ROWS:
        panels.append(
            {
                "type": "row",
                "title": title,
                "id": next_id,
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
                "panels": [],
            }
        )
        next_id += 1
        y += 1
        for i, p in enumerate(row):
            width = 24 // min(len(row), 3)
            p = {**p, "id": next_id, "gridPos": {"h": 8, "w": width, "x": (i % 3) * width, "y": y}}
            for ref, t in zip("ABCDEFGH", p["targets"], strict=False):
                t["refId"] = ref
            panels.append(p)
            next_id += 1
            if i % 3 == 2 or i == len(row) - 1:
                y += 8
    return {
        "uid": "pandagpt-serve",
        "title": "PandaGPT serving",
        "description": "Requests, latency, throughput, encoders, cache and workers.",
        "tags": ["pandagpt", "llm", "vllm"],
        "editable": True,
        "graphTooltip": 1,
        "refresh": "30s",
        "schemaVersion": 39,
        "time": {"from": "now-3h", "to": "now"},
        "timezone": "browser",
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Data source",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {},
                    "hide": 0,
                },
                {
                    "name": "namespace",
                    "label": "Namespace",
                    "type": "query",
                    "datasource": DS,
                    "query": "label_values(pandagpt_http_requests_total, namespace)",
                    "includeAll": True,
                    "allValue": ".*",
                    "multi": True,
                    "current": {"text": "All", "value": "$__all"},
                    "refresh": 2,
                    "hide": 0,
                },
            ]
        },
        "annotations": {"list": []},
        "panels": panels,
    }


def render() -> str:
    return json.dumps(build(), indent=2) + "\n"


if __name__ == "__main__":
    text = render()
    for path in OUTPUTS:
        path.write_text(text)
        print(f"wrote {path.relative_to(ROOT)}")
