"""A media server whose answers wait for the test: a request that fetches from it holds
whatever it took at admission (a slot, a key's concurrency lease) until the test opens
the gate. Tests hold requests this way instead of racing the tiny engine's speed."""

from __future__ import annotations

import contextlib
import http.server
import threading
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

from tests.utils.media import MEDIA_DIR


class Gate:
    def __init__(self, url: str, media_dir: Path) -> None:
        self.url = url
        self.media_dir = media_dir
        self.lock = threading.Lock()
        self.arrivals = 0
        self.paths: list[str] = []  # in the order the fetches arrived
        self.opened = threading.Event()


class _GateHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        gate: Gate = self.server.gate  # type: ignore[attr-defined]
        with gate.lock:
            gate.arrivals += 1
            gate.paths.append(self.path)
        gate.opened.wait(60)
        # A query string may tell requests apart: the file is the path's.
        data = (gate.media_dir / urllib.parse.urlsplit(self.path).path.lstrip("/")).read_bytes()
        with contextlib.suppress(OSError):  # the fetch may have been given up meanwhile
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        return None


@contextlib.contextmanager
def gated_media(media_dir: Path = MEDIA_DIR) -> Iterator[Gate]:
    """Serves `media_dir` on 127.0.0.1 (the gateway must allow loopback media)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _GateHandler)
    server.daemon_threads = True
    gate = Gate(f"http://127.0.0.1:{server.server_address[1]}", media_dir)
    server.gate = gate  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield gate
    finally:
        gate.opened.set()
        server.shutdown()
        server.server_close()
