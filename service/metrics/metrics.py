"""The `Metrics` object: every metric the service exports, on its own registry.

Who records what (so that `serve`, with gateway and worker in one process and
one `Metrics`, counts nothing twice):
- gateway: HTTP requests, request latencies (e2e, TTFT, inter-token), token
  counters, running/waiting/queued, admission rejections, media fetch failures,
  worker health, usage and refusals by API key name, the rate limiter's Redis state;
- worker: queue time, encoder batch sizes and latency, embedding cache.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

_LATENCY_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
)  # fmt: skip
_TOKEN_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 1.0, 2.5)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry

        # --- HTTP (gateway) ---
        self.http_requests = Counter(
            "pandagpt_http_requests_total",
            "HTTP requests by route template, method and status code.",
            ["route", "method", "status"],
            registry=r,
        )
        self.http_request_duration = Histogram(
            "pandagpt_http_request_duration_seconds",
            "HTTP request duration by route template (to the last byte sent).",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.rejected_requests = Counter(
            "pandagpt_rejected_requests_total",
            "Requests refused before reaching a worker, by reason "
            "(busy, memory, body_too_large, unauthorized, no_worker).",
            ["reason"],
            registry=r,
        )

        # --- generation (gateway) ---
        self.time_to_first_token = Histogram(
            "pandagpt_time_to_first_token_seconds",
            "From admission to the first generated text, by model.",
            ["model"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.inter_token_latency = Histogram(
            "pandagpt_inter_token_latency_seconds",
            "Between consecutive streamed deltas of one request, by model.",
            ["model"],
            buckets=_TOKEN_BUCKETS,
            registry=r,
        )
        self.e2e_request_latency = Histogram(
            "pandagpt_e2e_request_latency_seconds",
            "From admission to the end of generation, by endpoint, outcome and model.",
            ["endpoint", "outcome", "model"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.requests_running = Gauge(
            "pandagpt_requests_running", "Requests streaming tokens now.", registry=r
        )
        self.requests_waiting = Gauge(
            "pandagpt_requests_waiting",
            "Admitted requests not yet producing tokens (media fetch, encode, queue).",
            registry=r,
        )
        self.prompt_tokens = Counter(
            "pandagpt_prompt_tokens_total",
            "Prompt tokens processed, by model.",
            ["model"],
            registry=r,
        )
        self.generation_tokens = Counter(
            "pandagpt_generation_tokens_total",
            "Tokens generated, by model.",
            ["model"],
            registry=r,
        )

        # --- worker ---
        self.queue_time = Histogram(
            "pandagpt_queue_time_seconds",
            "Time a job waited in the worker before the engine took it.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.encoder_batch_size = Histogram(
            "pandagpt_encoder_batch_size",
            "Media items per encoder forward, by modality.",
            ["modality"],
            buckets=_BATCH_BUCKETS,
            registry=r,
        )
        self.encode_latency = Histogram(
            "pandagpt_encode_latency_seconds",
            "Encoder forward time per batch, by modality.",
            ["modality"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )

        # --- embedding cache ---
        self.cache_hits = Counter(
            "pandagpt_cache_hits_total",
            "Embedding cache hits by modality.",
            ["modality"],
            registry=r,
        )
        self.cache_misses = Counter(
            "pandagpt_cache_misses_total",
            "Embedding cache misses by modality (errors count as misses too).",
            ["modality"],
            registry=r,
        )
        self.cache_errors = Counter(
            "pandagpt_cache_errors_total",
            "Cache backend failures (timeouts, connection errors) by operation.",
            ["operation"],
            registry=r,
        )

        # --- media and workers (gateway) ---
        self.media_fetch_failures = Counter(
            "pandagpt_media_fetch_failures_total",
            "Media items refused or not fetched, by reason.",
            ["reason"],
            registry=r,
        )
        self.worker_healthy = Gauge(
            "pandagpt_worker_healthy",
            "1 when the gateway sees the worker ready, else 0.",
            ["worker"],
            registry=r,
        )
        self.worker_inflight = Gauge(
            "pandagpt_worker_inflight_requests",
            "Requests the gateway has in flight on each worker.",
            ["worker"],
            registry=r,
        )
        self.model_workers_ready = Gauge(
            "pandagpt_model_workers_ready",
            "Workers the gateway sees ready for each model it knows (0: the model answers 503).",
            ["model"],
            registry=r,
        )

        # --- usage and limits by API key name (gateway; the key itself never) ---
        self.key_requests = Counter(
            "pandagpt_key_requests_total",
            "Requests admitted, by API key name and endpoint.",
            ["key", "endpoint"],
            registry=r,
        )
        self.key_prompt_tokens = Counter(
            "pandagpt_key_prompt_tokens_total",
            "Prompt tokens, by API key name.",
            ["key"],
            registry=r,
        )
        self.key_completion_tokens = Counter(
            "pandagpt_key_completion_tokens_total",
            "Completion tokens, by API key name.",
            ["key"],
            registry=r,
        )
        self.key_media_items = Counter(
            "pandagpt_key_media_items_total",
            "Media items sent, by API key name and modality.",
            ["key", "modality"],
            registry=r,
        )
        self.key_refusals = Counter(
            "pandagpt_key_refusals_total",
            "Requests refused with 429, by API key name and reason "
            "(requests, tokens, concurrency, busy, queue_timeout).",
            ["key", "reason"],
            registry=r,
        )
        self.ratelimit_degraded = Gauge(
            "pandagpt_ratelimit_degraded",
            "1 while Redis cannot be used and per-key limits are counted per process.",
            registry=r,
        )
        self.ratelimit_errors = Counter(
            "pandagpt_ratelimit_redis_errors_total",
            "Redis failures of the rate limiter, by operation (admit, settle).",
            ["operation"],
            registry=r,
        )
        self.requests_queued = Gauge(
            "pandagpt_requests_queued",
            "Requests waiting in the gateway's admission queue for a place.",
            registry=r,
        )

        # --- process health (gateway and worker) ---
        self.memory_budget = Gauge(
            "pandagpt_memory_budget_bytes",
            "Bytes of request bodies and media this process may hold at once.",
            registry=r,
        )
        self.memory_in_use = Gauge(
            "pandagpt_memory_in_use_bytes",
            "Bytes of request bodies and media held now (reserved against the budget).",
            registry=r,
        )
        self.event_loop_lag = Histogram(
            "pandagpt_event_loop_lag_seconds",
            "How late the event loop ran a timer: a stall of the loop delays every request.",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=r,
        )
        self.event_loop_lag_max = Gauge(
            "pandagpt_event_loop_lag_max_seconds",
            "The largest event-loop stall since the process started.",
            registry=r,
        )


def render_latest(metrics: Metrics) -> tuple[bytes, str]:
    """The exposition text and its content type."""
    return generate_latest(metrics.registry), CONTENT_TYPE_LATEST
