"""The documentation's runnable examples, found and run with Sybil.

A fenced block is runnable when its info string is `python {.run}` or `bash {.run}`
(MkDocs Material renders the `run` class invisibly). Examples are written for a reader:
they call `http://localhost:8000` and name files relative to the repository root. The
runner replaces that address with the test server's and runs each example in a scratch
folder holding a link to the repository's `tests/` (its media fixtures), so what an
example writes stays out of the checkout. The Python examples of one page share one
namespace, in page order, as a reader running them in turn would.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sybil import Example, Sybil
from sybil.evaluators.python import pad
from sybil.parsers.markdown import CodeBlockParser

ROOT = Path(__file__).resolve().parents[2]
READER_URL = "http://localhost:8000"
BASE_URL = "_docs_base_url"  # set by the test in each page's namespace
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
BASH_TIMEOUT_S = 180


def _source(example: Example) -> str:
    return str(example.parsed).replace(READER_URL, example.namespace[BASE_URL])


def run_python(example: Example) -> None:
    code = compile(pad(_source(example), example.line), example.path, "exec")
    exec(code, example.namespace)


def run_bash(example: Example) -> None:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    proc = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", _source(example)],
        env=env,
        capture_output=True,
        text=True,
        timeout=BASH_TIMEOUT_S,
    )
    if proc.returncode != 0:
        raise AssertionError(
            f"{example.path}:{example.line} exited {proc.returncode}\n"
            f"stdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"
        )


DOCS = Sybil(
    parsers=[
        CodeBlockParser(language="python {.run}", evaluator=run_python),
        CodeBlockParser(language="bash {.run}", evaluator=run_bash),
    ]
)


def examples() -> list[Example]:
    """Every runnable example, page by page, in page order."""
    return [example for page in PAGES for example in DOCS.parse(page).examples()]


def example_id(example: Example) -> str:
    return f"{Path(example.path).relative_to(ROOT)}:{example.line}"
