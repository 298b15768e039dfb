"""The public HTTP API (gateway): OpenAI-compatible routes over a `Worker`."""

from service.api.app import create_app

__all__ = ["create_app"]
