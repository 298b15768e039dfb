"""The embedding cache interface: media sha256 → encoder feature.

A cache is an optimisation, never a dependency: every backend failure is logged,
counted (`pandagpt_cache_errors_total`) and answered as a miss, and `degraded`
tells `/health/ready` about it. With tracing on, each lookup and store is a
span (`cache.get` with its `hit`, `cache.set`). Values are float32 little-endian bytes, so a
cached vector reads back bit-identical on any host; `pack_f32`/`unpack_f32`
convert lists (the worker converts tensors with
`tensor.numpy().astype("<f4").tobytes()` / `torch.frombuffer`).
"""

from __future__ import annotations

import sys
from abc import ABC, abstractmethod
from array import array
from collections.abc import Sequence
from dataclasses import dataclass

from service import telemetry
from service.metrics import Metrics


@dataclass(frozen=True)
class CacheKey:
    """`fingerprint` names the encoder weights and preprocessing (a checkpoint
    hash), so a new model never reads an old model's features."""

    fingerprint: str
    modality: str
    sha256: str

    def render(self, prefix: str) -> str:
        return f"{prefix}{self.fingerprint}:{self.modality}:{self.sha256}"


class EmbeddingCache(ABC):
    def __init__(self, metrics: Metrics | None = None) -> None:
        self._metrics = metrics

    @property
    def degraded(self) -> bool:
        """True while the backend is failing (requests still succeed, uncached)."""
        return False

    async def get(self, key: CacheKey) -> bytes | None:
        with telemetry.span("cache.get", modality=key.modality) as span:
            value = await self._get(key)
            span.set_attribute("hit", value is not None)
        if self._metrics is not None:
            counter = self._metrics.cache_hits if value is not None else self._metrics.cache_misses
            counter.labels(modality=key.modality).inc()
        return value

    async def set(self, key: CacheKey, value: bytes) -> None:
        with telemetry.span("cache.set", modality=key.modality, bytes=len(value)):
            await self._set(key, value)

    @abstractmethod
    async def _get(self, key: CacheKey) -> bytes | None: ...

    @abstractmethod
    async def _set(self, key: CacheKey, value: bytes) -> None: ...

    async def probe(self) -> bool:
        """A readiness check of the backend; True when it answers."""
        return not self.degraded

    async def aclose(self) -> None:
        return None

    def _count_error(self, operation: str) -> None:
        if self._metrics is not None:
            self._metrics.cache_errors.labels(operation=operation).inc()


def pack_f32(values: Sequence[float]) -> bytes:
    buf = array("f", values)
    if sys.byteorder == "big":
        buf.byteswap()
    return buf.tobytes()


def unpack_f32(data: bytes) -> list[float]:
    buf = array("f")
    buf.frombytes(data)
    if sys.byteorder == "big":
        buf.byteswap()
    return buf.tolist()
