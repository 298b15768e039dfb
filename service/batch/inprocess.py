"""No `--url`: serve the batch in this process, from a model directory.

The batch is sent to the real public app (`service.api.create_app`) over a real
`ModelWorker`, through `httpx.ASGITransport`: no socket, no port, and every line
goes through the same validation, media checks, serving code and error mapping
as on `pandagpt serve`, so an output line is what the service would answer.

`ASGITransport` does not run the app's lifespan, and the lifespan is what starts
and stops the worker's background work (`worker.start()` / `stop()`): it is run
here through `app.router.lifespan_context`. The worker itself is closed after
the app, as in `serve`.

Settings are the service's (`PANDAGPT_*`, `--config`), with what only makes
sense on a network turned off: API keys (nobody else can call in), a separate
metrics port, the playground. The model side (torch, vLLM) is imported inside
the function: `pandagpt batch --url` never loads it, and vLLM's spawned
processes re-import only what they need (the CLI's `__main__` guard).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

from service.config import Settings
from service.http.logging import configure as configure_logging

_log = logging.getLogger(__name__)
# The ASGI transport needs an absolute URL; nothing resolves or connects to it.
BASE_URL = "http://pandagpt-in-process"


@contextlib.asynccontextmanager
async def asgi_client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """An `httpx.AsyncClient` over `app`, with the app's lifespan run around it."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
            yield client


def in_process_settings(model_dir: Path | None, config: Path | None) -> Settings:
    """The service's settings for an in-process run (`--model-dir` over env over file)."""
    settings = Settings.load(config, model_dir=model_dir)
    update: dict[str, Any] = {
        "api_keys": [],
        "api_key_file": None,
        "metrics_port": None,
        "enable_playground": False,
    }
    if "log_level" not in settings.model_fields_set:
        update["log_level"] = "warning"  # the progress bar, not an access line per request
    return settings.model_copy(update=update)


@contextlib.asynccontextmanager
async def in_process_client(
    model_dir: Path | None, config: Path | None
) -> AsyncIterator[httpx.AsyncClient]:
    """Load the model (demo weights when no model dir is set), build the app over it,
    and yield a client that calls it in process."""
    settings = in_process_settings(model_dir, config)
    configure_logging(settings)
    # vLLM logs each engine step at info; its own variable still wins when set.
    os.environ.setdefault("VLLM_LOGGING_LEVEL", settings.log_level.upper())
    from service.api import create_app
    from service.cache import create_cache
    from service.metrics import Metrics
    from service.worker.factory import build_worker

    if settings.model_dir is None:
        from service.weights.demo import make_demo_weights

        print(f"No model dir given: using demo weights in {settings.demo_dir} ...", file=sys.stderr)
        settings = settings.model_copy(update={"model_dir": make_demo_weights(settings.demo_dir)})
    metrics = Metrics()
    cache = create_cache(settings, metrics)
    print(f"Loading {settings.model_dir} ...", file=sys.stderr)
    worker = await build_worker(settings, metrics=metrics, cache=cache)
    try:
        app = create_app(settings, worker, cache=cache, metrics=metrics)
        async with asgi_client(app) as client:
            yield client
    finally:
        await worker.aclose()
