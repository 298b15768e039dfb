"""Every runnable example of the README and the documentation runs against a live server."""

from __future__ import annotations

from pathlib import Path

import pytest
from sybil import Example

from tests.docs.runnable import BASE_URL, ROOT, example_id, examples

pytestmark = pytest.mark.slow

EXAMPLES = examples()


@pytest.fixture(scope="session")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder the examples run in: `tests/` links to the repository's fixtures."""
    folder = tmp_path_factory.mktemp("docs-examples")
    (folder / "tests").symlink_to(ROOT / "tests", target_is_directory=True)
    return folder


def test_there_are_runnable_examples() -> None:
    pages = {Path(example.path).name for example in EXAMPLES}
    assert "README.md" in pages, "the README's examples must run"
    assert len(EXAMPLES) >= 5


@pytest.mark.parametrize("example", EXAMPLES, ids=example_id)
def test_example_runs(
    example: Example, docs_server: str, scratch: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(scratch)
    example.namespace[BASE_URL] = docs_server
    example.evaluate()
