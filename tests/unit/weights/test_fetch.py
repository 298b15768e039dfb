"""fetch-weights against local stand-ins only: a 127.0.0.1 HTTP server with
Range support for the ImageBind download, an injected hub download for the
delta. No network."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from service.weights.fetch import FetchError, download_resumable, fetch_weights

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB


class Server:
    def __init__(self) -> None:
        self.requests: list[str | None] = []  # Range header of each GET
        self.honour_range = True
        self.drop_first_after: int | None = None  # close early once, after N bytes
        self.status = 200


@pytest.fixture
def server() -> Iterator[tuple[Server, str]]:
    state = Server()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def do_GET(self) -> None:
            rng = self.headers.get("Range")
            state.requests.append(rng)
            if state.status != 200:
                self.send_error(state.status)
                return
            start = int(rng.split("=")[1].rstrip("-")) if rng and state.honour_range else 0
            body = PAYLOAD[start:]
            if start >= len(PAYLOAD) and rng:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(PAYLOAD)}")
                self.end_headers()
                return
            self.send_response(206 if start else 200)
            if start:
                self.send_header(
                    "Content-Range", f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}"
                )
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if state.drop_first_after is not None:
                self.wfile.write(body[: state.drop_first_after])
                state.drop_first_after = None
                self.close_connection = True
                return
            self.wfile.write(body)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield state, f"http://127.0.0.1:{httpd.server_port}/imagebind_huge.pth"
    httpd.shutdown()
    httpd.server_close()


def test_full_download(server, tmp_path: Path) -> None:
    state, url = server
    dest = download_resumable(url, tmp_path / "ib.pth")
    assert dest.read_bytes() == PAYLOAD
    assert state.requests == [None]
    assert not (tmp_path / "ib.pth.part").exists()


def test_resume_from_a_partial_file(server, tmp_path: Path) -> None:
    state, url = server
    (tmp_path / "ib.pth.part").write_bytes(PAYLOAD[:300_000])
    assert download_resumable(url, tmp_path / "ib.pth").read_bytes() == PAYLOAD
    assert state.requests == ["bytes=300000-"]


def test_dropped_connection_is_resumed(server, tmp_path: Path) -> None:
    state, url = server
    state.drop_first_after = 100_000
    assert download_resumable(url, tmp_path / "ib.pth").read_bytes() == PAYLOAD
    assert state.requests[0] is None and state.requests[1] == "bytes=100000-"


def test_server_ignoring_range_restarts(server, tmp_path: Path) -> None:
    state, url = server
    state.honour_range = False
    (tmp_path / "ib.pth.part").write_bytes(b"garbage" * 10)
    assert download_resumable(url, tmp_path / "ib.pth").read_bytes() == PAYLOAD


def test_complete_part_file_and_http_errors(server, tmp_path: Path) -> None:
    state, url = server
    (tmp_path / "ib.pth.part").write_bytes(PAYLOAD)
    assert download_resumable(url, tmp_path / "ib.pth").read_bytes() == PAYLOAD  # via 416
    state.status = 404
    with pytest.raises(FetchError, match="HTTP 404"):
        download_resumable(url, tmp_path / "other.pth")


def test_fetch_weights_records_sha256(server, tmp_path: Path) -> None:
    _, url = server
    calls = []

    def fake_hub(repo_id: str, filename: str, local_dir: Path) -> Path:
        calls.append((repo_id, filename))
        local_dir.mkdir(parents=True, exist_ok=True)
        (local_dir / filename).write_bytes(b"delta")
        return local_dir / filename

    records = fetch_weights("13b_max_len_400", tmp_path, imagebind_url=url, hub=fake_hub)
    assert calls == [("openllmplayground/pandagpt_13b_max_len_400", "pytorch_model.pt")]
    saved = json.loads((tmp_path / "checksums.json").read_text())
    assert saved == records
    assert saved["imagebind_huge"]["sha256"] == hashlib.sha256(PAYLOAD).hexdigest()
    assert saved["pandagpt_13b_max_len_400"]["path"] == "pandagpt_13b_max_len_400/pytorch_model.pt"
