"""Reaching workers from the gateway: one over HTTP, or a pool of them."""

from service.gateway.http_client import HTTPWorkerClient
from service.gateway.pool import WorkerPool

__all__ = ["HTTPWorkerClient", "WorkerPool"]
