"""The OpenAPI schema says what the API really answers (what the fuzz test holds it to):
documented error statuses with the OpenAI error body, the SSE alternative for chat, the
bearer scheme on /v1 routes, and `Allow` on 405."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.api import create_app
from service.config import Settings
from tests.utils.fake_worker import ScriptedWorker


@pytest.fixture(scope="module")
def schema_and_client() -> tuple[dict[str, Any], TestClient]:
    app = create_app(Settings(enable_playground=False, log_json=False), ScriptedWorker())
    client = TestClient(app)
    return client.get("/openapi.json").json(), client


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("post", "/v1/chat/completions"),
        ("post", "/v1/responses"),
        ("post", "/v1/embeddings"),
        ("get", "/v1/models"),
        ("get", "/v1/responses/{response_id}"),
        ("delete", "/v1/responses/{response_id}"),
        ("get", "/v1/responses/{response_id}/input_items"),
        ("post", "/v1/responses/{response_id}/cancel"),
    ],
)
def test_v1_routes_document_errors_and_bearer_auth(
    schema_and_client: tuple[dict[str, Any], TestClient], method: str, path: str
) -> None:
    schema, _ = schema_and_client
    operation = schema["paths"][path][method]
    statuses = set(operation["responses"])
    assert {"401", "500", "503"} <= statuses
    if "{response_id}" in path:
        assert {"400", "404"} <= statuses
    elif method == "post":
        assert {"400", "404", "408", "413", "429", "504"} <= statuses
    body = operation["responses"]["401"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/ErrorResponse"}
    assert operation["security"] == [{"HTTPBearer": []}]


def test_chat_documents_json_and_event_stream(
    schema_and_client: tuple[dict[str, Any], TestClient],
) -> None:
    schema, _ = schema_and_client
    ok = schema["paths"]["/v1/chat/completions"]["post"]["responses"]["200"]["content"]
    assert ok["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ChatCompletionResponse"
    }
    assert "text/event-stream" in ok


def test_responses_documents_json_and_event_stream(
    schema_and_client: tuple[dict[str, Any], TestClient],
) -> None:
    schema, _ = schema_and_client
    ok = schema["paths"]["/v1/responses"]["post"]["responses"]["200"]["content"]
    assert ok["application/json"]["schema"] == {"$ref": "#/components/schemas/ResponseObject"}
    assert "text/event-stream" in ok


def test_405_names_the_allowed_methods(
    schema_and_client: tuple[dict[str, Any], TestClient],
) -> None:
    _, client = schema_and_client
    response = client.request("TRACE", "/health/live")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET"
    assert response.json()["error"]["type"] == "invalid_request_error"
    stored = client.request("PUT", "/v1/responses/resp_x")  # two routes on one path
    assert stored.status_code == 405
    assert stored.headers["allow"] == "DELETE, GET"
