"""Hardening fixtures: demo weights once per session, and ONE all-in-one `pandagpt serve`
shared by the package's modules (fuzzing, hostile media, limits, auth), started with
tight limits so each one is cheap to reach:

- auth from a key file (rewritten by the revocation test, then restored),
- 16 MiB bodies, 12 MiB media items, a 2 s body read deadline, n <= 4,
- 2 running + 2 waiting sequences in the worker (the 5th concurrent stream is a 429),
- a 1024-token context.

Split-mode deployments are module-scoped in the modules that need them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from harness.deployments import Served, serve_all_in_one
from harness.processes import Process

# pytest's `record_property` fixture (pytest exports no name for its type)
RecordProperty = Callable[[str, object], None]

KEY = "hardening-key-0123456789"
SECOND_KEY = "hardening-second-key-9876"
SERVE_ENV = {
    "PANDAGPT_MAX_BODY_BYTES": str(16 * 2**20),
    "PANDAGPT_MAX_MEDIA_BYTES": str(12 * 2**20),
    "PANDAGPT_BODY_READ_TIMEOUT_S": "2",
    "PANDAGPT_MAX_NUM_SEQS": "2",
    "PANDAGPT_MAX_QUEUE_SIZE": "2",
    "PANDAGPT_MAX_N": "4",
    "PANDAGPT_ENFORCE_EAGER": "true",
    "PANDAGPT_LOG_LEVEL": "debug",  # the most the server ever logs: still no key in it
}


@dataclass
class Service:
    url: str
    proc: Process
    key_file: Path
    model: str

    @property
    def pid(self) -> int:
        return self.proc.popen.pid

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {KEY}"}

    def client(self, timeout: float = 120.0) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=self.headers, timeout=timeout)

    def log_text(self) -> str:
        return self.proc.log_path.read_text(errors="replace")


@pytest.fixture(scope="session")
def hardening_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("hardening-logs")


@pytest.fixture(scope="session")
def tiny_model_dir(demo_model_dir: Path) -> Path:
    return demo_model_dir  # the suite's (tests/conftest.py)


@pytest.fixture(scope="session")
def small_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`pandagpt demo-weights --size small`, made in-process (no second torch import)."""
    from service.weights.demo import make_demo_weights

    return make_demo_weights(tmp_path_factory.mktemp("demo-small"), seed=0, size="small")


@pytest.fixture(scope="package")
def service(
    tiny_model_dir: Path, hardening_logs: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Service]:
    key_file = tmp_path_factory.mktemp("keys") / "api-keys"
    key_file.write_text(f"# hardening keys\n{KEY}\n{SECOND_KEY}\n")
    env = {**SERVE_ENV, "PANDAGPT_API_KEY_FILE": str(key_file)}
    with serve_all_in_one(tiny_model_dir, hardening_logs, "serve-hardening", env) as served:
        model = _model_id(served)
        yield Service(served.url, served.proc, key_file, model)


def _model_id(served: Served) -> str:
    response = httpx.get(
        f"{served.url}/v1/models", headers={"Authorization": f"Bearer {KEY}"}, timeout=30
    )
    response.raise_for_status()
    return str(response.json()["data"][0]["id"])


def chat_body(model: str, content: object = "Hello", **extra: object) -> dict[str, object]:
    return {"model": model, "messages": [{"role": "user", "content": content}], **extra}


def assert_serves(service: Service) -> None:
    """A valid request still succeeds (after whatever the test just threw at it)."""
    with service.client(timeout=60) as client:
        response = client.post("/v1/chat/completions", json=chat_body(service.model, max_tokens=2))
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["finish_reason"] in {"stop", "length"}
