"""The base of each endpoint's serving object: the dependencies they all take.

Like vLLM's `OpenAIServing`: `create_app` builds one serving object per
endpoint from the same parts, and the routers call its `create`.
"""

from __future__ import annotations

from service.api.inflight import InflightLimit
from service.api.media.fetch import MediaFetcher
from service.api.models.catalog import ModelCatalog
from service.config import Settings
from service.contract import Worker
from service.metrics import Metrics
from service.ratelimit import RateLimiter


class OpenAIServing:
    def __init__(
        self,
        *,
        worker: Worker,
        catalog: ModelCatalog,
        fetcher: MediaFetcher,
        inflight: InflightLimit,
        rate_limiter: RateLimiter,
        settings: Settings,
        metrics: Metrics,
    ) -> None:
        self.worker = worker
        self.catalog = catalog
        self.fetcher = fetcher
        self.inflight = inflight
        self.rate_limiter = rate_limiter
        self.settings = settings
        self.metrics = metrics
