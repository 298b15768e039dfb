"""Serves the playground page at `/` and its assets under `/playground/static/`.

The page is static (no templating, no build step) and calls only the public
`/v1` API from the browser, with the user's own API key; so these routes need
no auth and expose nothing the API does not. The gateway includes this router
only when `Settings.enable_playground` is true.
"""

from __future__ import annotations

from importlib import resources
from typing import Final

from fastapi import APIRouter, HTTPException
from fastapi.responses import Response

# The page loads nothing from elsewhere: scripts, styles and API calls stay on
# this origin; attachments are previewed from data:/blob: URLs.
_CSP: Final = (
    "default-src 'self'; img-src 'self' data: blob:; media-src 'self' data: blob:; "
    "connect-src 'self'; style-src 'self'; script-src 'self'; object-src 'none'; "
    "base-uri 'self'; form-action 'none'; frame-ancestors 'none'"
)
_HEADERS: Final = {
    "Content-Security-Policy": _CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Assets are not fingerprinted, so a new release must not be hidden by caches.
    "Cache-Control": "no-cache",
}
# The only files served; anything else under /playground/static/ is a 404.
_ASSETS: Final = {
    "index.html": "text/html; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
}

router = APIRouter(tags=["playground"], include_in_schema=False)


def _asset(name: str) -> Response:
    media_type = _ASSETS.get(name)
    if media_type is None:
        raise HTTPException(status_code=404, detail=f"no playground asset {name!r}")
    body = resources.files("service.playground").joinpath("static", name).read_bytes()
    return Response(body, media_type=media_type, headers=_HEADERS)


@router.get("/")
async def playground_page() -> Response:
    return _asset("index.html")


@router.get("/playground/static/{name}")
async def playground_asset(name: str) -> Response:
    return _asset(name)
