"""The playground routes: the page, its three assets, and nothing else."""

from __future__ import annotations

import re

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from service.api import create_app
from service.config import Settings
from service.playground import router
from tests.utils.fake_worker import ScriptedWorker

KEY = "playground-unit-key-0123456789"


@pytest.fixture(scope="module")
def client() -> TestClient:
    app = FastAPI()
    app.include_router(router)
    return TestClient(app)


def test_page_is_served_at_root_with_a_strict_csp(client: TestClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert "default-src 'self'" in response.headers["content-security-policy"]
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "<title>PandaGPT playground</title>" in response.text


@pytest.mark.parametrize(
    ("name", "media_type"),
    [("app.js", "text/javascript; charset=utf-8"), ("app.css", "text/css; charset=utf-8")],
)
def test_assets_are_served_with_their_types(client: TestClient, name: str, media_type: str) -> None:
    response = client.get(f"/playground/static/{name}")
    assert response.status_code == 200
    assert response.headers["content-type"] == media_type
    assert response.content


@pytest.mark.parametrize("name", ["router.py", "..%2Frouter.py", "missing.js", "__init__.py"])
def test_other_files_are_not_served(client: TestClient, name: str) -> None:
    assert client.get(f"/playground/static/{name}").status_code == 404


def test_page_loads_nothing_from_other_origins(client: TestClient) -> None:
    page = client.get("/").text
    script = client.get("/playground/static/app.js").text
    links = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert links, "expected the page to reference its assets"
    assert all(not re.match(r"^[a-z]+://|^//", link) for link in links), links
    # The API is addressed relative to the page, so a path prefix in front of the gateway works.
    assert 'apiUrl("v1/chat/completions")' in script and 'apiUrl("v1/models")' in script
    assert "https://" not in script and "http://" not in script


@pytest.mark.parametrize("enabled", [True, False])
def test_gateway_serves_the_page_only_when_enabled(enabled: bool) -> None:
    settings = Settings(enable_playground=enabled, log_json=False, api_keys=[KEY])
    client = TestClient(create_app(settings, ScriptedWorker()))
    assert client.get("/").status_code == (200 if enabled else 404)
    assert client.get("/playground/static/app.js").status_code == (200 if enabled else 404)


def test_page_needs_no_key_while_the_api_does() -> None:
    settings = Settings(log_json=False, api_keys=[KEY])
    client = TestClient(create_app(settings, ScriptedWorker()))
    assert client.get("/").status_code == 200
    assert client.get("/v1/models").status_code == 401
    assert client.get("/v1/models", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
