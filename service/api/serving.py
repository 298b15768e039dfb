"""The base of each endpoint's serving object: the dependencies they all take.

Like vLLM's `OpenAIServing`: `create_app` builds one serving object per
endpoint from the same parts, and the routers call its `create`.
"""

from __future__ import annotations

from service.api.admission import Admission
from service.api.media_fetch import MediaFetcher
from service.api.models.serving import ModelCatalog
from service.config import Settings
from service.metrics import Metrics
from service.worker.base import Worker


class OpenAIServing:
    def __init__(
        self,
        *,
        worker: Worker,
        catalog: ModelCatalog,
        fetcher: MediaFetcher,
        admission: Admission,
        settings: Settings,
        metrics: Metrics,
    ) -> None:
        self.worker = worker
        self.catalog = catalog
        self.fetcher = fetcher
        self.admission = admission
        self.settings = settings
        self.metrics = metrics
