"""The three server processes behind `pandagpt serve | gateway | worker`.

- `serve`: gateway and worker in one process; the gateway calls the worker
  in-process through the `Worker` interface. Demo weights are made on first run
  when no model dir is configured; the cache is in memory unless
  `PANDAGPT_REDIS_URL` is set.
- `worker`: the worker behind the internal HTTP API.
- `gateway`: the public API over a `WorkerPool` of remote workers; imports
  neither torch nor vLLM.

Settings are built once here (CLI flags over env over the settings file) and
passed down. Everything heavy is imported inside the functions: vLLM spawns
processes that re-import modules, and `gateway` must stay light.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from service import telemetry
from service.config import Settings
from service.http.logging import configure as configure_logging
from service.memory import (
    budget_bytes,
    budget_from_settings,
    freeze_startup_objects,
    tune_allocator,
)
from service.server import serve_app, server_config

_log = logging.getLogger(__name__)


def load_settings(args: argparse.Namespace, **overrides: Any) -> Settings:
    """Settings from `--config`/env, with the CLI flags that were given on top; the
    allocator is set up from them before anything large is allocated."""
    flags = {
        "host": getattr(args, "host", None),
        "port": getattr(args, "port", None),
        "model_dir": getattr(args, "model_dir", None),
        **overrides,
    }
    settings = Settings.load(getattr(args, "config", None), **flags)
    tune_allocator(settings.malloc_mmap_threshold_bytes, settings.malloc_arena_max)
    _check_key_file(settings)
    return settings


def _check_key_file(settings: Settings) -> None:
    """A key file that exists but cannot be used stops the server before it starts."""
    from service.ratelimit.keys import KeyFileError, read_key_file

    if settings.api_key_file is not None and settings.api_key_file.is_file():
        try:
            read_key_file(settings.api_key_file)
        except KeyFileError as exc:
            raise SystemExit(f"pandagpt: {exc}") from None


# --- serve: gateway + worker in one process ---


def run_serve(args: argparse.Namespace) -> int:
    settings = load_settings(args)
    if "host" not in settings.model_fields_set:
        # The one-command local default stays on this machine; deployments pass --host.
        settings = settings.model_copy(update={"host": "127.0.0.1"})
    configure_logging(settings)
    telemetry.setup("pandagpt")
    if settings.model_dir is None:
        settings = settings.model_copy(update={"model_dir": ensure_demo_weights(settings)})
    asyncio.run(_serve_all_in_one(settings))
    return 0


def ensure_demo_weights(settings: Settings) -> Path:
    """The demo model dir under `settings.demo_dir`, made on first use (seeded, reused)."""
    from service.weights.demo import make_demo_weights

    print(f"No model dir configured: using demo weights in {settings.demo_dir} ...", flush=True)
    return make_demo_weights(settings.demo_dir)


async def _serve_all_in_one(settings: Settings) -> None:
    from service.api import create_app
    from service.cache import create_cache
    from service.metrics import Metrics
    from service.worker.factory import build_worker

    metrics = Metrics()
    cache = create_cache(settings, metrics)  # the worker's; the gateway only reports on it
    # No pool stands between this gateway and its worker: the worker publishes its health.
    # One memory budget per process: request bodies and decoded media count against it.
    budget = budget_from_settings(settings, metrics)
    worker = await build_worker(
        settings, metrics=metrics, cache=cache, health_label="in-process", budget=budget
    )
    budget.set_limit(budget_bytes(settings))  # the default is sized from what loading left
    try:
        app = create_app(settings, worker, cache=cache, metrics=metrics, budget=budget)
        model = worker.default_model
        await _serve(app, settings, banner=lambda url: usage_banner(url, settings, model))
    finally:
        await worker.aclose()


async def _serve(app: Any, settings: Settings, banner: Callable[[str], str]) -> None:
    """Serve `app` on the configured address; `banner(url)` is printed once it listens."""
    freeze_startup_objects()  # later garbage collections skip the loaded model
    config = server_config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        graceful_s=settings.shutdown_grace_s,
        header_timeout_s=settings.header_timeout_s,
    )
    await serve_app(config, on_started=lambda url: print(banner(url), flush=True))


def usage_banner(url: str, settings: Settings, model: str) -> str:
    """What a new user sees once the server listens: the URL and two calls that work."""
    key = settings.api_keys[0] if settings.api_keys else None
    auth_header = f' -H "Authorization: Bearer {key}"' if key else ""
    api_key = key or "unused"
    return f"""
PandaGPT is serving `{model}` at {url}

  curl {url}/v1/chat/completions -H "Content-Type: application/json"{auth_header} \\
    -d '{{"model": "{model}", "max_tokens": 32,
         "messages": [{{"role": "user", "content": "Hello!"}}]}}'

  python -c 'from openai import OpenAI
c = OpenAI(base_url="{url}/v1", api_key="{api_key}")
print(c.chat.completions.create(model="{model}", max_tokens=32,
      messages=[{{"role": "user", "content": "Hello!"}}]).choices[0].message.content)'
"""


# --- worker: the internal HTTP API ---


def run_worker(args: argparse.Namespace) -> int:
    settings = load_settings(args)
    if "port" not in settings.model_fields_set:  # no flag, env or file: the worker's own default
        settings = settings.model_copy(update={"port": 8001})
    configure_logging(settings)
    telemetry.setup("pandagpt-worker")
    if settings.model_dir is None:
        raise SystemExit("pandagpt worker: set --model-dir or PANDAGPT_MODEL_DIR")
    asyncio.run(_serve_worker(settings))
    return 0


async def _serve_worker(settings: Settings) -> None:
    from service.metrics import Metrics
    from service.worker.factory import build_worker
    from service.worker.http_app import create_worker_app

    metrics = Metrics()
    budget = budget_from_settings(settings, metrics)
    worker = await build_worker(settings, metrics=metrics, budget=budget)
    budget.set_limit(budget_bytes(settings))  # the default is sized from what loading left
    try:
        app = create_worker_app(worker, settings, metrics=metrics, budget=budget)
        await _serve(app, settings, banner=lambda url: f"PandaGPT worker listening at {url}")
    finally:
        await worker.aclose()


# --- gateway: public API over remote workers ---


def run_gateway(args: argparse.Namespace) -> int:
    overrides: dict[str, Any] = {}
    if args.worker_url:
        overrides["worker_urls"] = args.worker_url
    settings = load_settings(args, **overrides)
    configure_logging(settings)
    telemetry.setup("pandagpt-gateway")
    if not settings.worker_urls:
        raise SystemExit("pandagpt gateway: set --worker-url (repeatable) or PANDAGPT_WORKER_URLS")
    asyncio.run(_serve_gateway(settings))
    return 0


async def _serve_gateway(settings: Settings) -> None:
    from service.api import create_app
    from service.gateway import WorkerPool
    from service.metrics import Metrics

    metrics = Metrics()
    pool = WorkerPool.from_settings(settings, metrics=metrics)
    try:
        app = create_app(settings, pool, metrics=metrics)
        workers = len(settings.worker_urls)
        await _serve(
            app, settings, banner=lambda url: f"PandaGPT gateway at {url} over {workers} worker(s)"
        )
    finally:
        await pool.aclose()
