"""Schemathesis against the running all-in-one service's own OpenAPI schema.

Every route, with a valid key and without one: no 5xx, every status, header, content
type and body as the schema documents it, schema-invalid input refused with a 4xx.
`positive_data_acceptance` is left out on purpose: a schema-valid chat request can still
be refused for meaning (the last message must be from the user; a media URL must be
fetchable), which no JSON schema can express. The example count is bounded so the
module runs in well under 90 s on two CPU cores.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.hardening.conftest import KEY, RecordProperty, Service, assert_serves

pytestmark = pytest.mark.slow

MAX_EXAMPLES = 20  # per operation and phase
SEED = 20261126
SCHEMATHESIS = [sys.executable, "-m", "schemathesis.cli"]


def run_schemathesis(service: Service, tmp: Path, *headers: str) -> tuple[int, str, float]:
    argv = [
        *SCHEMATHESIS,
        "run",
        f"{service.url}/openapi.json",
        "--checks",
        "all",
        "--exclude-checks",
        "positive_data_acceptance",
        "--phases",
        "examples,coverage,fuzzing",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        str(SEED),
        "--workers",
        "1",
        "--request-timeout",
        "60",
        # No answer may hang; generation speed on a shared CPU is not what this tests.
        "--max-response-time",
        "120",
        "--generation-database",
        "none",
        "--no-color",
    ]
    for header in headers:
        argv += ["--header", header]
    start = time.monotonic()
    done = subprocess.run(argv, cwd=tmp, capture_output=True, text=True, timeout=300)
    return done.returncode, done.stdout + done.stderr, time.monotonic() - start


def _generated(output: str) -> int:
    match = re.search(r"(\d+) generated", output)
    return int(match.group(1)) if match else 0


@pytest.mark.parametrize("auth", ["with-key", "without-key"])
def test_schemathesis_finds_nothing(
    service: Service, tmp_path: Path, auth: str, record_property: RecordProperty
) -> None:
    headers = [f"Authorization: Bearer {KEY}"] if auth == "with-key" else []
    code, output, seconds = run_schemathesis(service, tmp_path, *headers)
    cases = _generated(output)
    record_property("schemathesis_cases", cases)
    record_property("schemathesis_seconds", round(seconds, 1))
    print(f"schemathesis {auth}: {cases} cases in {seconds:.1f}s")
    assert code == 0, output[-6000:]
    assert cases >= 100, output[-2000:]
    assert "5xx" not in output.split("SUMMARY")[-1]
    assert_serves(service)
