"""Auth on the running service: 401 on every /v1 route without a valid key, revocation by
editing the key file, keys absent from logs and error bodies, and constant-time compares."""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from collections.abc import Callable

import httpx
import pytest
from fastapi.testclient import TestClient

from service.api import create_app
from service.config import Settings
from tests.hardening.conftest import KEY, SECOND_KEY, Service, assert_serves, chat_body
from tests.utils.fake_worker import ScriptedWorker

CANARY = "sk-canary-never-log-me-31337"
ROUTES: list[tuple[str, str]] = [
    ("GET", "/v1/models"),
    ("POST", "/v1/chat/completions"),
    ("POST", "/v1/embeddings"),
    ("GET", "/v1/no-such-route"),
]


def _call(service: Service, method: str, path: str, headers: dict[str, str]) -> httpx.Response:
    body = (
        chat_body(service.model, max_tokens=1)
        if "chat" in path
        else {"model": service.model, "input": "x"}
    )
    json_body = body if method == "POST" else None
    return httpx.request(
        method, f"{service.url}{path}", json=json_body, headers=headers, timeout=60
    )


@pytest.mark.slow
@pytest.mark.parametrize(("method", "path"), ROUTES)
@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": f"Bearer {CANARY}"},
        {"Authorization": f"Basic {KEY}"},  # the right key under the wrong scheme
        {"Authorization": f"Bearer {KEY[:-1]}"},  # one character short
        {"Authorization": "Bearer"},
    ],
    ids=["missing", "wrong", "basic", "prefix", "empty"],
)
def test_every_v1_route_needs_a_valid_key(
    service: Service, method: str, path: str, headers: dict[str, str]
) -> None:
    response = _call(service, method, path, headers)
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer"
    error = response.json()["error"]
    assert (error["type"], error["code"]) == ("authentication_error", "invalid_api_key")
    for secret in (KEY, SECOND_KEY, CANARY):
        assert secret not in response.text


@pytest.mark.slow
def test_valid_keys_pass(service: Service) -> None:
    for key in (KEY, SECOND_KEY):
        headers = {"Authorization": f"Bearer {key}"}
        assert _call(service, "GET", "/v1/models", headers).status_code == 200


@pytest.mark.slow
def test_a_key_removed_from_the_file_is_revoked(service: Service) -> None:
    original = service.key_file.read_text()
    second = {"Authorization": f"Bearer {SECOND_KEY}"}
    try:
        service.key_file.write_text(f"{KEY}\n")
        future = time.time() + 5  # a distinct mtime even within the filesystem's granularity
        os.utime(service.key_file, (future, future))
        deadline = time.monotonic() + 10
        status = 200
        while time.monotonic() < deadline and status != 401:
            status = _call(service, "GET", "/v1/models", second).status_code
            time.sleep(0.25)
        assert status == 401, "revoked key still accepted 10 s after the file changed"
        print(f"revocation: refused {10 - (deadline - time.monotonic()):.1f}s after the edit")
        assert _call(service, "GET", "/v1/models", service.headers).status_code == 200
    finally:
        service.key_file.write_text(original)
        later = time.time() + 10
        os.utime(service.key_file, (later, later))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # restored for the modules after this one
        if _call(service, "GET", "/v1/models", second).status_code == 200:
            break
        time.sleep(0.25)
    assert_serves(service)


@pytest.mark.slow
def test_keys_never_reach_the_logs(service: Service) -> None:
    _call(service, "GET", "/v1/models", {"Authorization": f"Bearer {CANARY}"})
    _call(service, "POST", "/v1/chat/completions", service.headers)
    log = service.log_text()
    assert "/v1/models" in log or "v1" in log  # the log is the server's, and it logged
    for secret in (KEY, SECOND_KEY, CANARY):
        assert secret not in log, f"a key appears in {service.proc.log_path}"


def test_key_comparison_uses_hmac_compare_digest(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real: Callable[[bytes, bytes], bool] = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)  # what the auth module calls
    keys = ["first-key-0123456789", "second-key-0123456789"]
    app = create_app(
        Settings(enable_playground=False, log_json=False, api_keys=keys), ScriptedWorker()
    )
    with TestClient(app) as client:
        refused = client.get("/v1/models", headers={"Authorization": "Bearer first-key-0"})
        assert refused.status_code == 401
        # Every configured key (as its SHA-256) is compared, even after a match: no early exit.
        digests = [hashlib.sha256(k.encode()).hexdigest().encode() for k in keys]
        assert [b for _, b in calls] == digests
        calls.clear()
        ok = client.get("/v1/models", headers={"Authorization": f"Bearer {keys[0]}"})
        assert ok.status_code == 200
        assert [b for _, b in calls] == digests
