"""Outbound fetches against a real HTTPS server on 127.0.0.1: the SSRF guard, limits, statuses and redirects."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from envoi.outbound import FetchedFile, OutboundClient, OutboundRefused, OutboundUnavailable, is_public_address
from tests.smtp_sink import _make_certificates


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    stream_bytes: int = 0  # send this much without a Content-Length, until the client hangs up
    stall: bool = False  # never answer


class HttpsServer(ThreadingHTTPServer):
    """Serves ``routes`` by path, recording connections, requests (path and headers) and the SNI names seen."""

    daemon_threads = True

    def __init__(self, host: str, cert: Path, key: Path) -> None:
        super().__init__((host, 0), _Handler)
        self.routes: dict[str, Reply] = {}
        self.connections = 0
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.sni: list[str | None] = []
        self.streamed = 0
        self.released = threading.Event()
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(cert, key)
        self.context.sni_callback = lambda _sock, name, _ctx: self.sni.append(name)
        self.port: int = self.server_address[1]
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self._thread.start()

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"https://{host}:{self.port}{path}"

    def get_request(self) -> tuple[socket.socket, Any]:
        request = super().get_request()
        self.connections += 1
        return request

    def finish_request(self, request: Any, client_address: Any) -> None:
        # The TLS handshake happens in the connection's own thread, so a stalled client never blocks accept().
        self.RequestHandlerClass(self.context.wrap_socket(request, server_side=True), client_address, self)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients hanging up mid-answer is what several tests do on purpose

    def stop(self) -> None:
        self.released.set()
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    server: HttpsServer
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.server.requests.append((self.path, dict(self.headers)))
        reply = self.server.routes.get(unquote(self.path.split("?")[0]), Reply(404, b"not found"))
        if reply.stall:
            self.server.released.wait(10)
            return
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        if reply.stream_bytes:
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            while self.server.streamed < reply.stream_bytes:
                self.wfile.write(b"x" * 65536)
                self.server.streamed += 65536
            return
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        self.wfile.write(reply.body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    return _make_certificates(tmp_path_factory.mktemp("outbound-tls"))


@pytest.fixture
def server(certificates: tuple[Path, Path, Path]) -> Iterator[HttpsServer]:
    _ca, cert, key = certificates
    server = HttpsServer("127.0.0.1", cert, key)
    yield server
    server.stop()


@pytest.fixture
def ca_file(certificates: tuple[Path, Path, Path]) -> Path:
    return certificates[0]


async def fetch(url: str, **settings: Any) -> FetchedFile:
    client = OutboundClient(**({"timeout": 5.0, "max_bytes": 1_000_000} | settings))
    try:
        return await client.fetch(url)
    finally:
        await client.aclose()


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_loopback_is_refused_by_default_without_connecting(server: HttpsServer, ca_file: Path, host: str) -> None:
    server.routes["/a.pdf"] = Reply(body=b"%PDF")
    with pytest.raises(OutboundRefused, match="not a public address"):
        await fetch(server.url("/a.pdf", host), ca_file=ca_file)
    assert server.connections == 0


async def test_fetched_from_private_network_when_allowed(server: HttpsServer, ca_file: Path) -> None:
    body = bytes(range(256)) * 40
    server.routes["/docs/Invoice May.pdf"] = Reply(body=body, headers={"Content-Type": "application/pdf"})
    url = server.url("/docs/Invoice%20May.pdf?signature=abc", "localhost")
    fetched = await fetch(url, allow_private=True, ca_file=ca_file)
    assert fetched == FetchedFile(url=url, content_type="application/pdf", filename="Invoice May.pdf", data=body)
    # Connected to the checked address, yet TLS and HTTP still name the host of the URL.
    [(path, headers)] = server.requests
    assert path == "/docs/Invoice%20May.pdf?signature=abc"
    assert headers["Host"] == f"localhost:{server.port}"
    assert server.sni == ["localhost"]


async def test_filename_from_content_disposition_and_type_from_it(server: HttpsServer, ca_file: Path) -> None:
    disposition = "attachment; filename*=UTF-8''R%C3%A9sum%C3%A9%202026.pdf"
    server.routes["/download"] = Reply(body=b"%PDF", headers={"Content-Disposition": disposition})
    fetched = await fetch(server.url("/download"), allow_private=True, ca_file=ca_file)
    assert (fetched.filename, fetched.content_type) == ("Résumé 2026.pdf", "application/pdf")
    server.routes["/evil"] = Reply(body=b"x", headers={"Content-Disposition": 'attachment; filename="..\\../x.csv"'})
    fetched = await fetch(server.url("/evil"), allow_private=True, ca_file=ca_file)
    assert (fetched.filename, fetched.content_type) == ("x.csv", "text/csv")  # no path survives
    server.routes["/"] = Reply(body=b"x", headers={"Content-Type": "text/plain; charset=utf-8"})
    fetched = await fetch(server.url("/"), allow_private=True, ca_file=ca_file)
    assert (fetched.filename, fetched.content_type) == ("attachment", "text/plain")


async def test_an_untrusted_certificate_is_not_fetched(server: HttpsServer) -> None:
    server.routes["/a.pdf"] = Reply(body=b"%PDF")
    with pytest.raises(OutboundUnavailable, match="CERTIFICATE_VERIFY_FAILED"):
        await fetch(server.url("/a.pdf"), allow_private=True)
    assert server.requests == []


async def test_plain_http_is_refused_without_connecting(server: HttpsServer, ca_file: Path) -> None:
    with pytest.raises(OutboundRefused, match="only https URLs"):
        await fetch(f"http://127.0.0.1:{server.port}/a.pdf", allow_private=True, ca_file=ca_file)
    assert server.connections == 0


async def test_size_cap_from_content_length(server: HttpsServer, ca_file: Path) -> None:
    server.routes["/exact"] = Reply(body=b"x" * 1000)
    server.routes["/over"] = Reply(body=b"x" * 1001)
    assert len((await fetch(server.url("/exact"), max_bytes=1000, allow_private=True, ca_file=ca_file)).data) == 1000
    with pytest.raises(OutboundRefused, match="larger than 1000 bytes"):
        await fetch(server.url("/over"), max_bytes=1000, allow_private=True, ca_file=ca_file)


async def test_size_cap_stops_an_endless_body(server: HttpsServer, ca_file: Path) -> None:
    total = 512 * 1024 * 1024
    server.routes["/endless"] = Reply(headers={"Content-Type": "video/mp4"}, stream_bytes=total)
    started = time.monotonic()
    with pytest.raises(OutboundRefused, match="larger than 100000 bytes"):
        await fetch(server.url("/endless"), max_bytes=100_000, allow_private=True, ca_file=ca_file)
    assert time.monotonic() - started < 3
    time.sleep(0.2)  # let the server notice the hang-up
    assert server.streamed < total // 10


@pytest.mark.parametrize(
    ("status", "headers", "error", "retry_after"),
    [
        (404, {}, OutboundRefused, None),
        (403, {}, OutboundRefused, None),
        (410, {"Retry-After": "60"}, OutboundRefused, None),
        (503, {}, OutboundUnavailable, None),
        (500, {"Retry-After": "30"}, OutboundUnavailable, 30.0),
        (408, {}, OutboundUnavailable, None),
        (429, {"Retry-After": "120"}, OutboundUnavailable, 120.0),
    ],
)
async def test_http_errors(
    server: HttpsServer,
    ca_file: Path,
    status: int,
    headers: dict[str, str],
    error: type[OutboundRefused | OutboundUnavailable],
    retry_after: float | None,
) -> None:
    server.routes["/file"] = Reply(status, b"no", headers)
    with pytest.raises(error, match=f"HTTP {status}") as raised:
        await fetch(server.url("/file?token=secret"), allow_private=True, ca_file=ca_file)
    assert "secret" not in raised.value.reason  # signed URLs stay out of logs and event reasons
    assert getattr(raised.value, "retry_after", None) == retry_after


async def test_retry_after_as_a_date(server: HttpsServer, ca_file: Path) -> None:
    server.routes["/file"] = Reply(429, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})
    with pytest.raises(OutboundUnavailable) as raised:
        await fetch(server.url("/file"), allow_private=True, ca_file=ca_file)
    assert raised.value.retry_after == 0.0  # a date in the past: now


async def test_up_to_three_redirects_are_followed(server: HttpsServer, ca_file: Path) -> None:
    server.routes["/file.txt"] = Reply(body=b"hello")
    for hop in range(1, 5):
        target = "/file.txt" if hop == 4 else f"/r{hop + 1}"
        server.routes[f"/r{hop}"] = Reply(302 if hop % 2 else 301, headers={"Location": target})
    fetched = await fetch(server.url("/r2"), allow_private=True, ca_file=ca_file)
    assert (fetched.data, fetched.filename) == (b"hello", "r2")  # named after the URL asked for
    with pytest.raises(OutboundRefused, match="more than 3 redirects"):
        await fetch(server.url("/r1"), allow_private=True, ca_file=ca_file)


async def test_redirect_to_plain_http_is_refused(server: HttpsServer, ca_file: Path) -> None:
    server.routes["/moved"] = Reply(307, headers={"Location": f"http://127.0.0.1:{server.port}/file"})
    with pytest.raises(OutboundRefused, match="only https URLs"):
        await fetch(server.url("/moved"), allow_private=True, ca_file=ca_file)
    assert [path for path, _ in server.requests] == ["/moved"]


async def test_each_redirect_target_is_checked_again(
    server: HttpsServer, certificates: tuple[Path, Path, Path], ca_file: Path
) -> None:
    internal = HttpsServer("127.0.0.2", *certificates[1:])  # another loopback address: an "internal service"
    try:
        internal.routes["/admin"] = Reply(body=b"secret")
        server.routes["/moved"] = Reply(302, headers={"Location": internal.url("/admin", "127.0.0.2")})
        with pytest.raises(OutboundRefused, match=r"127\.0\.0\.2 resolves to 127\.0\.0\.2, not a public address"):
            await fetch(server.url("/moved"), allowed_networks=["127.0.0.1/32"], ca_file=ca_file)
        assert [path for path, _ in server.requests] == ["/moved"]
        assert internal.connections == 0
    finally:
        internal.stop()


async def test_a_server_that_never_answers_times_out(server: HttpsServer, ca_file: Path) -> None:
    server.routes["/slow"] = Reply(stall=True)
    started = time.monotonic()
    with pytest.raises(OutboundUnavailable, match=r"within 0\.5s"):
        await fetch(server.url("/slow"), timeout=0.5, allow_private=True, ca_file=ca_file)
    assert time.monotonic() - started < 2


async def test_unknown_host_is_temporary() -> None:
    with pytest.raises(OutboundUnavailable, match=r"cannot resolve attachments\.invalid"):
        await fetch("https://attachments.invalid/a.pdf")


async def test_not_a_url_is_refused() -> None:
    with pytest.raises(OutboundRefused, match="only https URLs"):
        await fetch("invoice.pdf")


@pytest.mark.parametrize(
    "address",
    [
        "10.1.2.3",
        "172.16.0.1",
        "172.31.255.255",
        "192.168.1.1",
        "169.254.169.254",  # cloud metadata
        "127.0.0.1",
        "100.64.0.1",  # carrier-grade NAT
        "0.0.0.0",
        "224.0.0.1",
        "255.255.255.255",
        "::1",
        "::",
        "fc00::1",
        "fe80::1%eth0",
        "ff02::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "2002:7f00:1::",  # 6to4 for 127.0.0.1
        "64:ff9b::a00:1",  # NAT64 for 10.0.0.1
    ],
)
def test_non_public_addresses_are_refused(address: str) -> None:
    assert not is_public_address(address)


@pytest.mark.parametrize(
    "address", ["93.184.216.34", "8.8.8.8", "2606:2800:220:1:248:1893:25c8:1946", "::ffff:8.8.8.8"]
)
def test_public_addresses_are_allowed(address: str) -> None:
    assert is_public_address(address)
