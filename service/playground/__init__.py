"""The web playground: a static page at `/` that talks only to the public `/v1` API."""

from service.playground.router import router

__all__ = ["router"]
