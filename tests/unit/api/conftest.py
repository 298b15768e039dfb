"""Gateway app fixtures: a real uvicorn server on 127.0.0.1 over a ScriptedWorker."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import openai
import pytest
from openai import OpenAI

from harness.local_servers import serve_in_thread
from service.api import create_app
from service.api.media.fetch import MediaFetcher
from service.config import Settings
from service.metrics import Metrics
from tests.utils.fake_worker import ScriptedWorker


class Gateway:
    def __init__(self, url: str, worker: ScriptedWorker, metrics: Metrics, settings: Settings):
        self.url = url
        self.worker = worker
        self.metrics = metrics
        self.settings = settings

    def client(self, api_key: str = "unused", **kwargs: Any) -> OpenAI:
        return OpenAI(base_url=f"{self.url}/v1", api_key=api_key, max_retries=0, **kwargs)

    def metric(self, name: str, labels: dict[str, str] | None = None) -> float:
        value = self.metrics.registry.get_sample_value(name, labels or {})
        return value or 0.0


GatewayFactory = Callable[..., AbstractContextManager[Gateway]]


def bad_request(call: object) -> dict[str, object]:
    """The OpenAI error body of a call that must be a 400."""
    with pytest.raises(openai.BadRequestError) as info:
        call()  # type: ignore[operator]
    assert isinstance(info.value.body, dict)
    return info.value.body


@pytest.fixture
def gateway_factory() -> GatewayFactory:
    @contextmanager
    def make(
        worker: ScriptedWorker | None = None, *, fetcher: Any = None, **overrides: Any
    ) -> Iterator[Gateway]:
        settings = Settings(**{"enable_playground": False, "log_json": False, **overrides})
        worker = worker or ScriptedWorker()
        metrics = Metrics()
        fetch = fetcher(settings, metrics) if fetcher else MediaFetcher(settings, metrics)
        app = create_app(settings, worker, metrics=metrics, fetcher=fetch)
        with serve_in_thread(app) as url:
            yield Gateway(url, worker, metrics, settings)

    return make


@pytest.fixture
def gateway(gateway_factory: GatewayFactory) -> Iterator[Gateway]:
    with gateway_factory() as gw:
        yield gw
