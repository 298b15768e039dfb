"""Headless Chromium for browser tests: Debian's `chromium`, driven by Playwright.

No browser is downloaded: Playwright launches the system binary (scripts/setup.sh
installs it). Screenshots go to `artifacts/playwright/` (gitignored) so a failed
CI run leaves something to look at.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Browser, Page, ViewportSize, sync_playwright

REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO_ROOT / "artifacts" / "playwright"
# No sandbox: tests run as root in containers; no GPU; no update or metrics traffic.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
LAPTOP: ViewportSize = {"width": 1280, "height": 800}
PHONE: ViewportSize = {"width": 390, "height": 844}


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@contextmanager
def launch_chromium() -> Iterator[Browser]:
    """A headless system Chromium; raises if none is installed."""
    executable = chromium_path()
    if executable is None:
        raise RuntimeError("chromium not found on PATH; run scripts/setup.sh")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def screenshot(page: Page, name: str, *, full_page: bool = False) -> Path:
    """Save a PNG of `page` as artifacts/playwright/<name>.png and return its path."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path
