"""Media fetching: SSRF refusals, allowlist, pinning, caps, sniffing, data: and file:."""

from __future__ import annotations

import base64
import shutil
import ssl
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest

from service.api.media.fetch import MediaFetcher, system_resolver
from service.api.media.ssrf import AddressPolicy
from service.config import Settings
from service.errors import MediaInvalid, MediaTooLarge
from service.metrics import Metrics
from tests.unit.api.conftest import Gateway
from tests.utils import media_bytes

PNG = media_bytes.png()


class MediaHandler(BaseHTTPRequestHandler):
    hosts: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.hosts.append(self.headers.get("Host", ""))
        port = self.server.server_address[1]
        if self.path == "/img.png":
            self._send(200, PNG)
        elif self.path == "/to-loopback":
            self._redirect(f"http://127.0.0.1:{port}/img.png")
        elif self.path == "/to-localhost":
            self._redirect(f"http://localhost:{port}/img.png")
        elif self.path.startswith("/hop/"):
            left = int(self.path.rsplit("/", 1)[1])
            self._redirect(f"/hop/{left - 1}" if left else "/img.png")
        elif self.path == "/big":
            self._send(200, PNG + b"\x00" * 5000, length=False)
        elif self.path == "/text":
            self._send(200, b"<html>not an image</html>")
        else:
            self._send(404, b"missing")

    def _redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _send(self, status: int, body: bytes, *, length: bool = True) -> None:
        self.send_response(status)
        if length:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def media_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), MediaHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def fetcher(calls: list[str] | None = None, **overrides: Any) -> MediaFetcher:
    async def resolver(host: str, port: int) -> list[str]:
        if calls is not None:
            calls.append(host)
        if host == "media.test":
            return ["127.0.0.1"]
        return await system_resolver(host, port)

    return MediaFetcher(Settings(**overrides), Metrics(), resolver=resolver)


async def refused(f: MediaFetcher, url: str, reason: str = "blocked_address") -> MediaInvalid:
    with pytest.raises(MediaInvalid) as info:
        await f.fetch(url, "image", param="p")
    assert info.value.reason == reason, info.value.message
    assert info.value.param == "p"
    await f.aclose()
    return info.value


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/x.png",
        "http://10.1.2.3/x.png",
        "http://192.168.0.1/x.png",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/x.png",
        "http://[::ffff:127.0.0.1]/x.png",
        "http://[fd00:ec2::254]/x.png",
        "http://0.0.0.0/x.png",
        "http://224.0.0.1/x.png",
        "http://localhost/x.png",  # a name that resolves to loopback
    ],
)
async def test_private_addresses_are_refused(url: str) -> None:
    await refused(fetcher(), url)


async def test_allowlisted_network_admits_local_server(media_server: str) -> None:
    f = fetcher(media_allow_networks=["127.0.0.0/8"])
    assert await f.fetch(f"http://{media_server}/img.png", "image", param="p") == PNG
    await f.aclose()


async def test_redirect_to_loopback_is_refused(media_server: str) -> None:
    port = media_server.rsplit(":", 1)[1]
    # media.test is allowlisted (and resolves to 127.0.0.1); the hop to 127.0.0.1 is not.
    await refused(
        fetcher(media_allow_domains=["media.test"]), f"http://media.test:{port}/to-loopback"
    )
    await refused(
        fetcher(media_allow_domains=["media.test"]), f"http://media.test:{port}/to-localhost"
    )


async def test_connection_is_pinned_to_the_checked_address(media_server: str) -> None:
    port = media_server.rsplit(":", 1)[1]
    calls: list[str] = []
    MediaHandler.hosts.clear()
    f = fetcher(calls, media_allow_domains=[".test"])
    assert await f.fetch(f"http://media.test:{port}/hop/1", "image", param="p") == PNG
    await f.aclose()
    # One resolution per hop, by us; the server still saw the name in Host.
    assert calls == ["media.test"] * 3  # /hop/1 → /hop/0 → /img.png
    assert MediaHandler.hosts[-3:] == [f"media.test:{port}"] * 3


async def test_redirect_cap(media_server: str) -> None:
    f = fetcher(media_allow_networks=["127.0.0.1/32"], media_max_redirects=2)
    # /hop/N takes N + 1 redirects.
    assert await f.fetch(f"http://{media_server}/hop/1", "image", param="p") == PNG
    await refused(f, f"http://{media_server}/hop/2", "too_many_redirects")


async def test_allowlist_only_refuses_public_hosts() -> None:
    policy = AddressPolicy(allow_domains=["media.example"], allowlist_only=True)
    assert policy.refusal("cdn.other", ["93.184.215.14"]) is not None
    assert policy.refusal("media.example", ["93.184.215.14"]) is None
    assert AddressPolicy().refusal("cdn.other", ["93.184.215.14"]) is None
    # One public and one private answer: refused (the connection could use either).
    assert AddressPolicy().refusal("mixed", ["93.184.215.14", "10.0.0.1"]) is not None


async def test_byte_cap_while_streaming_and_status(media_server: str) -> None:
    f = fetcher(media_allow_networks=["127.0.0.0/8"], max_media_bytes=1000)
    with pytest.raises(MediaTooLarge):
        await f.fetch(f"http://{media_server}/big", "image", param="p")
    await refused(f, f"http://{media_server}/missing", "bad_status")


async def test_sniffed_type_must_fit_the_modality(media_server: str) -> None:
    f = fetcher(media_allow_networks=["127.0.0.0/8"])
    await refused(f, f"http://{media_server}/text", "unsupported_format")


async def test_data_urls() -> None:
    f = fetcher()
    good = media_bytes.data_url(PNG, "image/png")
    assert await f.fetch(good, "image", param="p") == PNG
    wrapped = "data:image/png;base64," + "\n".join(
        base64.b64encode(PNG).decode()[i : i + 40] for i in range(0, 200, 40)
    )
    assert (await f.fetch(wrapped, "image", param="p"))[:8] == PNG[:8]
    await refused(fetcher(), "data:image/png;base64,iVBOR*w0K", "invalid_base64")
    await refused(fetcher(), media_bytes.data_url(PNG, "video/mp4"), "type_mismatch")
    await refused(
        fetcher(), media_bytes.data_url(media_bytes.wav(), "image/png"), "unsupported_format"
    )
    await refused(fetcher(), "data:image/png;base64,", "empty")
    await refused(fetcher(), "ftp://example.com/x.png", "invalid_url")
    with pytest.raises(MediaTooLarge):
        await fetcher(max_media_bytes=10).fetch(good, "image", param="p")


async def test_file_urls_only_inside_the_media_dir(tmp_path: Path) -> None:
    (tmp_path / "media").mkdir()
    (tmp_path / "media" / "a.png").write_bytes(PNG)
    (tmp_path / "secret.png").write_bytes(PNG)
    await refused(fetcher(), f"file://{tmp_path}/media/a.png", "not_allowed")
    f = fetcher(media_local_dir=tmp_path / "media")
    assert await f.fetch(f"file://{tmp_path}/media/a.png", "image", param="p") == PNG
    assert await f.fetch("file:a.png", "image", param="p") == PNG
    await refused(f, f"file://{tmp_path}/media/../secret.png", "not_allowed")
    await refused(fetcher(media_local_dir=tmp_path / "media"), "file:///etc/passwd", "not_allowed")


def test_refusal_through_the_api_is_400_and_counted(gateway: Gateway) -> None:
    part = {"type": "image_url", "image_url": {"url": "http://169.254.169.254/latest"}}
    response = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        json={"messages": [{"role": "user", "content": [part]}]},
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "media_blocked_address"
    assert error["param"] == "messages.0.content.0.image_url.url"
    assert gateway.metric("pandagpt_media_fetch_failures_total", {"reason": "blocked_address"}) == 1
    assert not gateway.worker.jobs


@pytest.fixture(scope="module")
def tls_media_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, str]]:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl CLI not installed (needed to make a test certificate)")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=media.test",
         "-addext", "subjectAltName=DNS:media.test"],
        check=True, capture_output=True,
    )  # fmt: skip
    server = ThreadingHTTPServer(("127.0.0.1", 0), MediaHandler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1], str(cert)
    server.shutdown()


async def test_https_pinned_keeps_sni_and_certificate_name(
    tls_media_server: tuple[int, str],
) -> None:
    port, cafile = tls_media_server

    async def resolver(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]

    def make(domain: str) -> MediaFetcher:
        transport = httpx.AsyncHTTPTransport(verify=ssl.create_default_context(cafile=cafile))
        settings = Settings(media_allow_domains=[domain])
        return MediaFetcher(settings, Metrics(), resolver=resolver, transport=transport)

    good = make("media.test")
    # Connected to 127.0.0.1, yet the certificate was checked against media.test.
    assert await good.fetch(f"https://media.test:{port}/img.png", "image", param="p") == PNG
    await good.aclose()
    await refused(make("other.test"), f"https://other.test:{port}/img.png", "connect")


async def test_csv_imu_and_npy_depth() -> None:
    f = fetcher()
    csv = media_bytes.data_url(media_bytes.csv(), "text/csv")
    assert await f.fetch(csv, "imu", param="p") == media_bytes.csv()
    npy = media_bytes.data_url(media_bytes.npy(), "application/octet-stream")
    with pytest.raises(MediaInvalid) as info:
        await f.fetch(npy, "depth", param="p")
    assert info.value.reason == "unsupported_format"
    await f.aclose()
