"""The OpenAPI schema says what the API really answers (what the fuzz test holds it to):
`Allow` on 405."""

from __future__ import annotations

from fastapi.testclient import TestClient

from service.api import create_app
from service.config import Settings
from tests.utils.fake_worker import ScriptedWorker


def test_405_names_the_allowed_methods() -> None:
    app = create_app(Settings(enable_playground=False, log_json=False), ScriptedWorker())
    response = TestClient(app).request("TRACE", "/health/live")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET"
    assert response.json()["error"]["type"] == "invalid_request_error"
