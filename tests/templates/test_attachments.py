"""Attachment URLs read from an event's ctx (REST JSON and Adobe's SOAP XML alike), and fetched for one email."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from envoi.channels.base import Attachment
from envoi.outbound import OutboundClient, OutboundRefused
from envoi.soap.xml import ctx_to_json, parse_document
from envoi.templates.attachments import attachment_urls, fetch_attachments

PDF = "https://files.example.com/invoices/42.pdf"
TERMS = "https://files.example.com/terms.pdf?v=3"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (PDF, [(PDF, None)]),
        (f"  {PDF}\n", [(PDF, None)]),
        ({"url": PDF, "name": "Facture 42.pdf"}, [(PDF, "Facture 42.pdf")]),
        ({"url": PDF, "name": " "}, [(PDF, None)]),
        ([PDF, {"url": TERMS, "name": "CGV.pdf"}], [(PDF, None), (TERMS, "CGV.pdf")]),
        ({"@url": PDF, "@name": "Facture.pdf"}, [(PDF, "Facture.pdf")]),
        ({"@name": "Facture.pdf", "#text": PDF}, [(PDF, "Facture.pdf")]),
        ("", []),  # <attachmentURL/>, or a template variable that came out empty
        ([], []),
        (None, []),
    ],
)
def test_attachment_url_shapes(value: Any, expected: list[tuple[str, str | None]]) -> None:
    assert attachment_urls({"orderId": "42", "attachmentURL": value}) == expected


def test_no_attachment_key() -> None:
    assert attachment_urls({"orderId": "42"}) == []


def test_adobe_soap_ctx_as_mapped_from_xml() -> None:
    xml = f"""<ctx>
        <firstName>Ada</firstName>
        <attachmentURL name="Facture 42.pdf">{PDF}</attachmentURL>
        <attachmentURL>{TERMS.replace("&", "&amp;")}</attachmentURL>
        <attachmentURL url="https://files.example.com/a.png" name="photo.png"/>
    </ctx>"""
    ctx = ctx_to_json(parse_document(xml.encode()))
    assert attachment_urls(ctx) == [
        (PDF, "Facture 42.pdf"),
        (TERMS, None),
        ("https://files.example.com/a.png", "photo.png"),
    ]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (42, 'attachmentURL must be a URL or an object with "url" and "name", not a number'),
        (True, "attachmentURL must be .* not a boolean"),
        ([PDF, [TERMS]], r"attachmentURL\[1\] must be .* not a list"),
        ([PDF, None], r"attachmentURL\[1\] must be .* not null"),
        ({"name": "a.pdf"}, 'attachmentURL has no URL: expected "url"'),
        ([{"url": " ", "name": "a.pdf"}], r"attachmentURL\[0\] has no URL"),
        ({"url": 5}, "attachmentURL.url must be a string, not a number"),
        ({"url": PDF, "name": ["a", "b"]}, "attachmentURL.name must be a string, not a list"),
        ("invoice.pdf", "attachmentURL is not an https:// URL: 'invoice.pdf'"),
        ("ftp://files.example.com/a.pdf", "is not an https:// URL"),
        ("http://files.example.com/a.pdf", "is not an https:// URL"),
        ("https://files.example.com/a b.pdf", "is not an https:// URL"),
        ("https:///a.pdf", "is not an https:// URL"),
    ],
)
def test_malformed_attachment_urls(value: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        attachment_urls({"attachmentURL": value})


class FileServer:
    """Plain HTTP on 127.0.0.1 that answers each path after ``delay``, counting requests in flight."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.delay = 0.0
        self.in_flight = 0
        self.most_in_flight = 0
        self.port = 0

    async def start(self) -> asyncio.Server:
        server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        return server

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        path = (await reader.readuntil(b"\r\n\r\n")).split(b" ", 2)[1].decode()
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        await asyncio.sleep(self.delay)
        self.in_flight -= 1
        body = self.files.get(path)
        head = "200 OK" if body is not None else "404 Not Found"
        body = body if body is not None else b""
        writer.write(f"HTTP/1.1 {head}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
        await writer.drain()
        writer.close()


@pytest.fixture
async def files() -> AsyncIterator[FileServer]:
    files = FileServer()
    server = await files.start()
    yield files
    server.close()
    await server.wait_closed()


@pytest.fixture
async def fetcher() -> AsyncIterator[OutboundClient]:
    client = OutboundClient(timeout=5.0, max_bytes=1000, allow_http=True, allow_private=True)
    yield client
    await client.aclose()


async def test_fetched_in_order_a_few_at_a_time_with_the_names_given(
    files: FileServer, fetcher: OutboundClient
) -> None:
    files.delay = 0.05
    for n in range(8):
        files.files[f"/f/{n}.txt"] = str(n).encode() * 100
    urls: list[tuple[str, str | None]] = [
        (files.url(f"/f/{n}.txt"), f"part {n}.txt" if n % 2 else None) for n in range(8)
    ]
    attachments = await fetch_attachments(fetcher, urls)
    assert attachments[:2] == (
        Attachment("0.txt", "text/plain", b"0" * 100),
        Attachment("part 1.txt", "text/plain", b"1" * 100),
    )
    assert [a.data for a in attachments] == [str(n).encode() * 100 for n in range(8)]
    assert 1 < files.most_in_flight <= 4


async def test_together_they_may_not_pass_the_size_cap(files: FileServer, fetcher: OutboundClient) -> None:
    files.files["/a.bin"] = b"a" * 600
    files.files["/b.bin"] = b"b" * 600
    with pytest.raises(OutboundRefused, match="the attachments total more than 1000 bytes"):
        await fetch_attachments(fetcher, [(files.url("/a.bin"), None), (files.url("/b.bin"), None)])


async def test_one_missing_file_refuses_the_lot(files: FileServer, fetcher: OutboundClient) -> None:
    files.files["/a.pdf"] = b"%PDF"
    with pytest.raises(OutboundRefused, match=r"/gone\.pdf: HTTP 404"):
        await fetch_attachments(fetcher, [(files.url("/a.pdf"), None), (files.url("/gone.pdf"), None)])


async def test_nothing_to_fetch(fetcher: OutboundClient) -> None:
    assert await fetch_attachments(fetcher, []) == ()
