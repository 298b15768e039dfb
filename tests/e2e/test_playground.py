"""The web playground in a real headless Chromium against a real `pandagpt serve`.

The server runs on demo weights with an API key set, so the page's key handling
is exercised too. Every test leaves a screenshot in artifacts/playwright/.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    FilePayload,
    Page,
    Request,
    Route,
    ViewportSize,
    expect,
)

from harness.probes import engine_running, wait_until_idle
from harness.processes import base_env, free_port, start_pandagpt
from tests.utils.browser import LAPTOP, PHONE, chromium_path, launch_chromium, screenshot

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(chromium_path() is None, reason="chromium not installed (scripts/setup.sh)"),
]

MEDIA = Path(__file__).parents[1] / "fixtures" / "media"
API_KEY = "playground-e2e-key-0123456789"
KEY_STORAGE = "pandagpt.playground.apiKey"  # as in service/playground/static/app.js
ANSWER_TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def base_url(demo_model_dir: Path, e2e_logs: Path) -> Iterator[str]:
    port = free_port()
    proc = start_pandagpt(
        "serve-playground",
        ["serve", "--model-dir", str(demo_model_dir), "--host", "127.0.0.1"],
        port=port,
        # One sequence at a time: the stop test's eight long choices then run one after
        # another (about ten seconds of engine work, not two), so the engine still works
        # when a browser slowed by a loaded machine has drawn the first text.
        env=base_env(PANDAGPT_API_KEYS=API_KEY, PANDAGPT_MAX_NUM_SEQS="1"),
        log_dir=e2e_logs,
    )
    yield f"http://127.0.0.1:{port}"
    proc.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with launch_chromium() as browser:
        yield browser


def _context(browser: Browser, *, viewport: ViewportSize, with_key: bool) -> BrowserContext:
    context = browser.new_context(viewport=viewport)
    if with_key:
        # As if the user had entered the key on an earlier visit.
        context.add_init_script(f"localStorage.setItem({KEY_STORAGE!r}, {API_KEY!r})")
    return context


@pytest.fixture
def page(browser: Browser, base_url: str, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A laptop-sized page with the API key stored; screenshotted when the test ends."""
    context = _context(browser, viewport=LAPTOP, with_key=True)
    page = context.new_page()
    page.goto(base_url)
    expect(page.locator("#model option")).not_to_have_count(0)
    yield page
    screenshot(page, request.node.name)
    context.close()


def _chat_requests(page: Page) -> list[dict[str, Any]]:
    """Collects the JSON bodies the page POSTs to /v1/chat/completions."""
    bodies: list[dict[str, Any]] = []

    def on_request(req: Request) -> None:
        if req.method == "POST" and req.url.endswith("/v1/chat/completions"):
            bodies.append(json.loads(req.post_data or "{}"))

    page.on("request", on_request)
    return bodies


# The demo engine can finish a short answer before the browser's first read, so the
# whole stream lands in one chunk. This hands the page the server's real SSE body one
# event at a time, a few milliseconds apart, the way a slower model would.
PACE_EVENT_STREAMS_JS = """() => {
  const realFetch = window.fetch;
  window.fetch = async (...args) => {
    const response = await realFetch(...args);
    if (!(response.headers.get('content-type') || '').startsWith('text/event-stream')) {
      return response;
    }
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    const encoder = new TextEncoder();
    let buffer = '';
    const paced = new ReadableStream({
      async pull(controller) {
        for (;;) {
          const end = buffer.indexOf('\\n\\n');
          if (end >= 0) {
            await new Promise((resolve) => setTimeout(resolve, 15));
            controller.enqueue(encoder.encode(buffer.slice(0, end + 2)));
            buffer = buffer.slice(end + 2);
            return;
          }
          const { value, done } = await reader.read();
          if (done) {
            if (buffer) controller.enqueue(encoder.encode(buffer));
            controller.close();
            return;
          }
          buffer += decoder.decode(value, { stream: true });
        }
      },
      cancel(reason) { return reader.cancel(reason); },
    });
    return new Response(paced, { status: response.status, headers: response.headers });
  };
}"""


def _watch_stream(page: Page) -> None:
    """Records the answer's text length on every DOM change, to see it grow while streaming."""
    page.evaluate(PACE_EVENT_STREAMS_JS)
    page.evaluate(
        """() => {
        window.__lengths = [];
        new MutationObserver(() => {
          const busy = document.querySelector('.message.assistant[aria-busy="true"] .content');
          if (busy) window.__lengths.push(busy.textContent.length);
        }).observe(document.getElementById('messages'),
                   {subtree: true, childList: true, characterData: true});
      }"""
    )


# WCAG contrast of each visible text element against the first opaque background behind it.
CONTRAST_JS = """(selectors) => {
  const rgb = (c) => c.match(/[\\d.]+/g).map(Number);
  const lum = ([r, g, b]) => [r, g, b].map((v) => {
    v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
  }).reduce((acc, v, i) => acc + v * [0.2126, 0.7152, 0.0722][i], 0);
  const background = (el) => {
    for (; el; el = el.parentElement) {
      const c = rgb(getComputedStyle(el).backgroundColor);
      if (c.length < 4 || c[3] > 0) return c;
    }
    return [255, 255, 255];
  };
  const out = [];
  for (const sel of selectors) for (const el of document.querySelectorAll(sel)) {
    if (!el.offsetParent || el.disabled) continue;
    const a = lum(rgb(getComputedStyle(el).color)), b = lum(background(el));
    out.push([sel, (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05)]);
  }
  return out;
}"""
TEXT_SELECTORS = [
    "h1",
    ".tagline",
    ".hint",
    "summary",
    "label",
    ".dropzone p",
    "button",
    ".role",
    ".message .content",
    ".meta",
    ".status",
    "textarea",
]


def _ask(page: Page, text: str) -> None:
    page.fill("#prompt", text)
    page.press("#prompt", "Enter")


def _answer(page: Page, index: int) -> str:
    """Waits for the index-th answer to finish and returns its text."""
    answer = page.locator(".message.assistant").nth(index)
    expect(answer).not_to_have_attribute("aria-busy", "true", timeout=ANSWER_TIMEOUT_MS)
    return answer.locator(".content").inner_text()


def test_image_question_streams_then_second_turn_resends_history(page: Page) -> None:
    bodies = _chat_requests(page)
    page.fill("#max-tokens", "48")
    page.set_input_files("#file-input", str(MEDIA / "bird_image.jpg"))
    preview = page.locator(".attachment img.preview")
    expect(preview).to_be_visible()
    assert page.evaluate("() => document.querySelector('.attachment img').naturalWidth") > 0

    _watch_stream(page)
    _ask(page, "What is in this image?")
    first = _answer(page, 0)
    lengths = [n for n in page.evaluate("window.__lengths") if n > 0]
    assert len(set(lengths)) >= 2, f"answer did not grow piece by piece: {lengths}"
    assert first.strip()
    expect(page.locator(".message.assistant .meta").first).to_contain_text("completion tokens")
    screenshot(page, "playground-image-answer")

    _ask(page, "Tell me more.")
    _answer(page, 1)
    assert len(bodies) == 2
    image_part = bodies[0]["messages"][0]["content"][1]
    assert image_part["type"] == "image_url"
    assert image_part["image_url"]["url"].startswith("data:image/jpeg;base64,")
    second = bodies[1]["messages"]
    assert [m["role"] for m in second] == ["user", "assistant", "user"]
    assert second[0] == bodies[0]["messages"][0]  # the image travels with the history
    assert second[1]["content"] == first
    assert bodies[1]["stream"] is True

    page.click("#copy-curl")
    curl = page.input_value("#curl-text")
    assert curl.startswith(f"curl -N {page.url}v1/chat/completions")
    assert "Bearer $PANDAGPT_API_KEY" in curl and API_KEY not in curl
    assert json.loads(curl.split("<<'JSON'\n", 1)[1].rsplit("\nJSON", 1)[0]) == bodies[1]


def test_dropped_audio_video_and_thermal_become_their_content_parts(page: Page) -> None:
    bodies = _chat_requests(page)
    files = [
        {"name": name, "type": mime, "b64": base64.b64encode((MEDIA / name).read_bytes()).decode()}
        for name, mime in [
            ("dog_audio.wav", "audio/wav"),
            ("a.mp4", "video/mp4"),
            ("car_image.jpg", "image/jpeg"),
        ]
    ]
    page.evaluate(
        """(files) => {
        const dt = new DataTransfer();
        for (const f of files) {
          const bytes = Uint8Array.from(atob(f.b64), (c) => c.charCodeAt(0));
          dt.items.add(new File([bytes], f.name, {type: f.type}));
        }
        document.getElementById('composer').dispatchEvent(
          new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true}));
      }""",
        files,
    )
    expect(page.locator(".attachment")).to_have_count(3)
    expect(page.locator(".attachment audio")).to_have_count(1)
    expect(page.locator(".attachment video")).to_have_count(1)
    page.select_option(".attachment-kind", "thermal")
    page.fill("#max-tokens", "16")
    _ask(page, "What do you hear, see and feel?")
    _answer(page, 0)
    expect(page.locator(".message.assistant .error")).to_have_count(0)
    parts = bodies[0]["messages"][0]["content"]
    assert [p["type"] for p in parts] == ["text", "input_audio", "video_url", "thermal_url"]
    assert parts[1]["input_audio"]["format"] == "wav"
    assert base64.b64decode(parts[1]["input_audio"]["data"])[:4] == b"RIFF"
    assert parts[2]["video_url"]["url"].startswith("data:video/mp4;base64,")
    assert parts[3]["thermal_url"]["url"].startswith("data:image/jpeg;base64,")


def _run_to_max_tokens(page: Page) -> None:
    """Makes the page's chat requests long on their way out (the page has no such setting):
    `ignore_eos`, so that answers run to max_tokens (the demo model often stops after a few
    words), and eight choices, which this module's server decodes one after another. The
    page shows the choices' text as it comes; the stream lasts until the last one ends."""

    def extend(route: Route) -> None:
        body = json.loads(route.request.post_data or "{}")
        route.continue_(post_data=json.dumps({**body, "ignore_eos": True, "n": 8}))

    page.route("**/v1/chat/completions", extend)


def test_stop_aborts_the_stream_and_clear_starts_over(page: Page, base_url: str) -> None:
    bodies = _chat_requests(page)
    _run_to_max_tokens(page)
    page.eval_on_selector("#max-tokens", "el => el.value = el.max")
    page.dispatch_event("#max-tokens", "input")
    # The slider's top is half the context: hundreds of tokens, seconds of engine work.
    assert int(page.input_value("#max-tokens")) >= 512
    _ask(page, "Write a very long story about a panda.")
    answer = page.locator(".message.assistant").first
    content = answer.locator(".content")
    expect(content).not_to_be_empty(timeout=ANSWER_TIMEOUT_MS)
    # Text is on screen and the engine still generates (the eight choices run one at a
    # time, see `base_url`): there is something to stop.
    assert engine_running(base_url) >= 1
    page.click("#stop")
    expect(answer).not_to_have_attribute("aria-busy", "true")
    expect(answer.locator(".meta")).to_have_text("Stopped.")
    expect(page.locator("#send")).to_be_enabled()
    expect(page.locator("#stop")).to_be_disabled()
    stopped_at = content.inner_text()
    page.wait_for_timeout(500)
    assert content.inner_text() == stopped_at
    # Closing the stream must free the server's generation slot, not just quiet the page.
    assert wait_until_idle(base_url) == 0

    page.click("#clear")
    expect(page.locator(".message")).to_have_count(0)
    page.fill("#max-tokens", "8")
    _ask(page, "Hello again.")
    _answer(page, 0)
    assert len(bodies) == 2 and all(len(b["messages"]) == 1 for b in bodies)


def test_corrupt_file_shows_a_readable_error(page: Page) -> None:
    garbage: FilePayload = {
        "name": "x.jpg",
        "mimeType": "image/jpeg",
        "buffer": b"definitely not a jpeg" * 8,
    }
    page.set_input_files("#file-input", files=[garbage])
    _ask(page, "What is this?")
    error = page.locator(".message.assistant .error[role=alert]")
    expect(error).to_be_visible(timeout=ANSWER_TIMEOUT_MS)
    text = error.inner_text()
    assert text.startswith("Error 400"), text
    assert "{" not in text
    # The draft comes back so the user can swap the file and resend.
    expect(page.locator("#attachments .attachment")).to_have_count(1)
    expect(page.locator("#prompt")).to_have_value("What is this?")


def test_mid_stream_error_event_is_shown(page: Page) -> None:
    # The real server only sends this event when generation fails after the first
    # bytes; this test scripts that one response to check how the page shows it.
    chunk = {"choices": [{"index": 0, "delta": {"content": "Half an ans"}, "finish_reason": None}]}
    error = {"message": "The engine stopped.", "type": "server_error", "param": None, "code": None}
    body = f"data: {json.dumps(chunk)}\n\ndata: {json.dumps({'error': error})}\n\ndata: [DONE]\n\n"
    page.route(
        "**/v1/chat/completions",
        lambda route: route.fulfill(status=200, content_type="text/event-stream", body=body),
    )
    _ask(page, "Hello?")
    shown = page.locator(".message.assistant .error")
    expect(shown).to_have_text("Error (server_error): The engine stopped.")
    expect(page.locator(".message.assistant .content")).to_have_text("Half an ans")


def test_api_key_is_asked_for_stored_and_sent(browser: Browser, base_url: str) -> None:
    context = _context(browser, viewport=LAPTOP, with_key=False)
    page = context.new_page()
    page.goto(base_url)
    expect(page.locator("#status")).to_contain_text("API key")
    expect(page.locator("#model option")).to_have_count(0)
    page.fill("#api-key", API_KEY)
    page.press("#api-key", "Tab")  # "change" fires on leaving the field
    expect(page.locator("#model option")).not_to_have_count(0)
    assert page.evaluate(f"localStorage.getItem({KEY_STORAGE!r})") == API_KEY
    page.fill("#max-tokens", "16")
    with page.expect_request("**/v1/chat/completions") as sent:
        _ask(page, "Hi")
    assert sent.value.headers["authorization"] == f"Bearer {API_KEY}"
    _answer(page, 0)
    screenshot(page, "playground-api-key")
    context.close()


def test_phone_layout_keyboard_and_labels(browser: Browser, base_url: str) -> None:
    context = _context(browser, viewport=PHONE, with_key=True)
    page = context.new_page()
    page.goto(base_url)
    expect(page.locator("#model option")).not_to_have_count(0)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    expect(page.locator("#settings-panel")).not_to_have_attribute("open", "")
    assert page.get_attribute("#messages", "aria-live") == "polite"
    unlabelled = page.evaluate(
        """() => [...document.querySelectorAll('input:not([hidden]), select, textarea, button')]
          .filter(e => !(e.labels?.length || e.getAttribute('aria-label') || e.textContent.trim()))
          .map(e => e.id)"""
    )
    assert unlabelled == []
    page.eval_on_selector("#max-tokens", "el => el.value = 16")  # settings are folded away

    # Keyboard only: the skip link leads to the message box, Enter sends.
    page.keyboard.press("Tab")
    expect(page.locator(".skip-link")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#prompt")).to_be_focused()
    page.keyboard.type("Hello from a phone")
    page.keyboard.press("Enter")
    assert _answer(page, 0) is not None
    ratios = page.evaluate(CONTRAST_JS, TEXT_SELECTORS)
    assert len(ratios) > 10
    assert [r for r in ratios if r[1] < 4.5] == []
    screenshot(page, "playground-phone", full_page=True)
    context.close()
