"""Media references in requests (http(s), data:, file:) → verified bytes.

Remote fetches are SSRF-hardened: the host is resolved first (off the event
loop), every resolved address is checked against `AddressPolicy`, and the
connection goes to the checked IP (the URL's host is replaced by the IP, with
the `Host` header and TLS SNI kept on the name), so a DNS answer that changes
between check and connect (rebinding) cannot redirect the request. Redirects
are followed by hand, each hop re-resolved and re-checked, up to a cap. Bodies
are capped while streaming, and the bytes' magic decides their type.

Every failure is a `MediaInvalid` with a reason, counted in
`pandagpt_media_fetch_failures_total{reason}`.
"""

from __future__ import annotations

import asyncio
import binascii
import ipaddress
import socket
import urllib.parse
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import httpx

from encoders.media.sniff import ACCEPTED, MIME_TYPES, compatible, sniff
from service import telemetry
from service.api.media import b64
from service.api.media.ssrf import AddressPolicy
from service.config import MediaFetchSettings
from service.errors import MediaInvalid, MediaTooLarge
from service.http.bulk import BulkWorker
from service.memory import charge
from service.metrics import Metrics

# host, port -> IP address strings; tests and operators may swap it.
Resolver = Callable[[str, int], Awaitable[list[str]]]

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
# Inline media up to this size is decoded on the loop: a thread hop costs more.
_INLINE_DECODE_BYTES = 256 * 1024
# A data: URL's media type and parameters end within this many characters.
_DATA_URL_HEADER_CHARS = 1024
T = TypeVar("T")


async def system_resolver(host: str, port: int) -> list[str]:
    # loop.getaddrinfo runs the blocking libc call in the default executor.
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class MediaFetcher:
    def __init__(
        self,
        settings: MediaFetchSettings,
        metrics: Metrics | None = None,
        *,
        resolver: Resolver = system_resolver,
        transport: httpx.AsyncBaseTransport | None = None,
        bulk: BulkWorker | None = None,
    ) -> None:
        self._max_bytes = settings.max_media_bytes
        self._max_redirects = settings.media_max_redirects
        self._total_timeout_s = settings.media_read_timeout_s + settings.media_connect_timeout_s
        self._local_dir = settings.media_local_dir.resolve() if settings.media_local_dir else None
        self._policy = AddressPolicy(
            allow_domains=settings.media_allow_domains,
            allow_networks=settings.media_allow_networks,
            allowlist_only=settings.media_allowlist_only,
        )
        self._resolver = resolver
        self._bulk = bulk or BulkWorker()  # large inline media are decoded there
        self._metrics = metrics
        self._client = httpx.AsyncClient(
            transport=transport,
            follow_redirects=False,  # each hop is re-checked by hand
            trust_env=False,  # a proxy would connect to the name, not the checked IP
            timeout=httpx.Timeout(
                settings.media_read_timeout_s, connect=settings.media_connect_timeout_s
            ),
            headers={"User-Agent": "pandagpt-serve/0.1 media-fetch"},
        )

    async def aclose(self) -> None:
        await self._client.aclose()
        self._bulk.close()

    # --- entry points ---

    async def fetch(self, url: str, modality: str, *, param: str) -> bytes:
        """Bytes of the media at `url` (http(s), data: or file:), checked for `modality`."""
        url = url.strip()
        # The scheme from a short prefix: the URL may be a 40 MB data: URL.
        head, colon, _ = url[:16].partition(":")
        scheme = head.lower() if colon else ""
        with telemetry.span("media.fetch", modality=modality, scheme=scheme, param=param) as span:
            data = await self._fetch(url, scheme, modality, param)
            span.set_attribute("bytes", len(data))
            return data

    async def _fetch(self, url: str, scheme: str, modality: str, param: str) -> bytes:
        if scheme == "data":
            declared, data = await self._decode_data_url(url, param)
        elif scheme in ("http", "https"):
            declared, data = None, await self._fetch_http(url, param)
        elif scheme == "file" or (not scheme and url.startswith("/")):
            declared, data = None, await self._read_local(url, param)
        else:
            raise self._fail("invalid_url", "Media URL must be http(s), data: or file:.", param)
        return self._check_type(data, modality, declared, param)

    async def decode_base64(
        self, data: str, modality: str, *, param: str, fmt: str | None
    ) -> bytes:
        """Inline base64 media (`input_audio.data`), checked like a data: URL."""
        with telemetry.span("media.fetch", modality=modality, scheme="base64", param=param):
            raw = await self._b64decode(data, param)
        declared = f"{modality}/{fmt}" if fmt else None
        return self._check_type(raw, modality, declared, param)

    # --- data: and base64 ---

    async def _decode_data_url(self, url: str, param: str) -> tuple[str | None, bytes]:
        # The payload is left in place (an offset): a copy of a 40 MB tail costs the loop.
        comma = url.find(",", 0, _DATA_URL_HEADER_CHARS)
        if comma < 0:
            raise self._fail("invalid_url", "Malformed data: URL (no comma).", param)
        parts = url[5:comma].split(";")
        declared = parts[0].strip() or None
        if "base64" in (p.strip().lower() for p in parts[1:]):
            return declared, await self._b64decode(url, param, start=comma + 1)
        size = len(url) - comma - 1
        self._check_size(size, param)  # percent-encoding only makes data shorter
        payload = url[comma + 1 :]
        return declared, await self._off_loop(urllib.parse.unquote_to_bytes, payload)

    async def _b64decode(self, text: str, param: str, start: int = 0) -> bytes:
        # Inline media are part of the body, which was reserved with room for them
        # (service.api.app.GATEWAY_HOLD_FACTOR): nothing more is charged here.
        size = b64.decoded_size(text, start)
        self._check_size(size, param)
        try:
            if size <= _INLINE_DECODE_BYTES:
                return b64.decode(text, start)
            return await self._bulk.run(b64.decode, text, start)
        except (binascii.Error, ValueError) as exc:
            raise self._fail("invalid_base64", "Media data is not valid base64.", param) from exc

    # --- http(s) ---

    async def _fetch_http(self, url: str, param: str) -> bytes:
        try:
            async with asyncio.timeout(self._total_timeout_s):
                for _ in range(self._max_redirects + 1):
                    target = httpx.URL(url)
                    response = await self._send_pinned(target, param)
                    try:
                        if response.status_code in _REDIRECTS:
                            location = response.headers.get("location")
                            if not location:
                                raise self._fail("bad_status", "Redirect without Location.", param)
                            url = str(target.join(location))
                            if not url.lower().startswith(("http://", "https://")):
                                raise self._fail(
                                    "invalid_url", "Redirect to a non-http URL.", param
                                )
                            continue
                        if response.status_code != 200:
                            raise self._fail(
                                "bad_status",
                                f"Media URL answered HTTP {response.status_code}.",
                                param,
                            )
                        return await self._read_capped(response, param)
                    finally:
                        await response.aclose()
        except TimeoutError as exc:
            raise self._fail("timeout", "Timed out fetching media.", param) from exc
        except httpx.TimeoutException as exc:
            raise self._fail("timeout", "Timed out fetching media.", param) from exc
        except httpx.ConnectError as exc:
            raise self._fail("connect", "Could not connect to the media host.", param) from exc
        except httpx.HTTPError as exc:
            raise self._fail("fetch_failed", f"Fetching media failed: {exc}", param) from exc
        raise self._fail("too_many_redirects", "Too many redirects fetching media.", param)

    async def _send_pinned(self, target: httpx.URL, param: str) -> httpx.Response:
        host = target.host
        if target.scheme not in ("http", "https") or not host:
            raise self._fail("invalid_url", "Media URL must be http(s) with a host.", param)
        port = target.port or (443 if target.scheme == "https" else 80)
        addresses = await self._resolve(host, port, param)
        refusal = self._policy.refusal(host, addresses)
        if refusal is not None:
            raise self._fail("blocked_address", f"Media URL refused: {refusal}.", param)
        # Connect to the address just checked; the name stays in Host and SNI.
        headers = {"Host": target.netloc.decode("ascii")}
        extensions = {"sni_hostname": host} if target.scheme == "https" else {}
        request = self._client.build_request(
            "GET", target.copy_with(host=addresses[0]), headers=headers, extensions=extensions
        )
        return await self._client.send(request, stream=True)

    async def _resolve(self, host: str, port: int, param: str) -> list[str]:
        try:
            return [str(ipaddress.ip_address(host))]  # already an IP literal
        except ValueError:
            pass
        try:
            addresses = await self._resolver(host, port)
        except (OSError, UnicodeError) as exc:
            raise self._fail("dns", f"Cannot resolve media host {host!r}.", param) from exc
        if not addresses:
            raise self._fail("dns", f"Cannot resolve media host {host!r}.", param)
        return addresses

    async def _read_capped(self, response: httpx.Response, param: str) -> bytes:
        declared = response.headers.get("content-length")
        if declared and declared.isdigit():
            self._check_size(int(declared), param)
        body = bytearray()
        async for chunk in response.aiter_bytes():
            body += chunk
            self._check_size(len(body), param)
            # Twice: the buffer, and the bytes returned from it.
            charge(2 * len(chunk), "downloaded media")
        return bytes(body)

    # --- file: ---

    async def _read_local(self, url: str, param: str) -> bytes:
        if self._local_dir is None:
            raise self._fail("not_allowed", "Local media paths are disabled.", param)
        raw = urllib.parse.urlparse(url).path if url.startswith("file:") else url
        path = Path(urllib.parse.unquote(raw))
        base = self._local_dir

        def read() -> bytes:
            resolved = (path if path.is_absolute() else base / path).resolve()
            if not resolved.is_relative_to(base):
                raise self._fail("not_allowed", "Media path is outside the media directory.", param)
            size = resolved.stat().st_size
            self._check_size(size, param)
            charge(size, "local media")
            return resolved.read_bytes()

        try:
            return await asyncio.to_thread(read)
        except OSError as exc:
            raise self._fail("not_found", "Media file not found.", param) from exc

    async def _off_loop(self, decode: Callable[[str], T], text: str) -> T:
        if len(text) <= _INLINE_DECODE_BYTES:
            return decode(text)
        return await self._bulk.run(decode, text)

    # --- checks ---

    def _check_size(self, size: int, param: str) -> None:
        if size > self._max_bytes:
            self._count("too_large")
            raise MediaTooLarge(f"Media exceeds the limit of {self._max_bytes} bytes.", param=param)

    def _check_type(self, data: bytes, modality: str, declared: str | None, param: str) -> bytes:
        if not data:
            raise self._fail("empty", "Media is empty.", param)
        sniffed = sniff(data)
        if sniffed is None or sniffed not in ACCEPTED.get(modality, frozenset()):
            what = MIME_TYPES[sniffed] if sniffed else "unrecognised data"
            raise self._fail("unsupported_format", f"{what} is not a supported {modality}.", param)
        if not compatible(declared, sniffed):
            raise self._fail(
                "type_mismatch",
                f"Declared type {declared} but the data is {MIME_TYPES[sniffed]}.",
                param,
            )
        return data

    def _fail(self, reason: str, message: str, param: str) -> MediaInvalid:
        self._count(reason)
        return MediaInvalid(message, reason=reason, param=param)

    def _count(self, reason: str) -> None:
        if self._metrics is not None:
            self._metrics.media_fetch_failures.labels(reason=reason).inc()
