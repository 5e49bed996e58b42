"""Outbound fetches against a real HTTPS server on 127.0.0.1: the SSRF guard, limits, statuses and redirects."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from envoi.outbound import FetchedFile, OutboundClient, OutboundRefused, OutboundUnavailable, is_public_address
from tests.https_server import HttpsServer, Reply
from tests.smtp_sink import _make_certificates


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
        "fec0::1",
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
