"""The served models, as the worker reports them, cached for a few seconds so
that every chat request does not cost a round trip to a remote worker. A name
not in the cached list is looked up again (at most once a second), so a worker
that joins with a new model serves it without waiting out the cache."""

from __future__ import annotations

import time

from service.api.models.protocol import ModelCard, ModelList
from service.contract import ServedModel, Worker
from service.errors import NotFound


class ModelCatalog:
    def __init__(self, worker: Worker, *, ttl_s: float = 5.0, miss_refresh_s: float = 1.0) -> None:
        self._worker = worker
        self._ttl_s = ttl_s
        self._miss_refresh_s = miss_refresh_s
        self._models: list[ServedModel] = []
        self._fetched_at = float("-inf")
        self._created = int(time.time())

    async def models(self, *, max_age_s: float | None = None) -> list[ServedModel]:
        now = time.monotonic()
        max_age_s = self._ttl_s if max_age_s is None else max_age_s
        if now - self._fetched_at > max_age_s or not self._models:
            self._models = await self._worker.models()
            self._fetched_at = now
        return self._models

    async def resolve(self, name: str | None) -> ServedModel:
        """The model a request names; the first served one when it names none."""
        models = await self.models()
        if name is None and models:
            return models[0]
        if all(model.id != name for model in models):
            models = await self.models(max_age_s=self._miss_refresh_s)
        for model in models:
            if model.id == name:
                return model
        raise NotFound(
            f"The model '{name}' does not exist; see GET /v1/models.",
            param="model",
            code="model_not_found",
        )

    async def model_list(self) -> ModelList:
        cards = [
            ModelCard(
                id=m.id,
                created=self._created,
                root=m.root,
                parent=m.parent,
                max_model_len=m.max_model_len,
            )
            for m in await self.models()
        ]
        return ModelList(data=cards)
