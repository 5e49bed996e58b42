"""Attachments by URL (Adobe's ``attachmentURL``), fetched at send time from a real HTTPS server on 127.0.0.1:
refused for private addresses by default, attached when allowed, retried while the server is down."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import NamedTuple

import httpx
import pytest
from pydantic import SecretStr

from envoi.delivery.worker import Worker
from envoi.runtime import Runtime
from envoi.settings import Settings
from tests.conftest import drain, make_client
from tests.helpers import event, published_template, push
from tests.https_server import HttpsServer, Reply
from tests.smtp_sink import SmtpSink, _make_certificates

PDF = b"%PDF-1.4 invoice A-1 " + bytes(range(256))


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    return _make_certificates(tmp_path_factory.mktemp("attachments-tls"))


@pytest.fixture
def files(certificates: tuple[Path, Path, Path]) -> Iterator[HttpsServer]:
    _ca, cert, key = certificates
    server = HttpsServer("127.0.0.1", cert, key)
    server.routes["/invoices/A-1.pdf"] = Reply(200, PDF, {"Content-Type": "application/pdf"})
    server.routes["/down.pdf"] = Reply(503, b"maintenance", {"Retry-After": "120"})
    yield server
    server.stop()


class Envoi(NamedTuple):
    api: httpx.AsyncClient
    runtime: Runtime


async def _envoi(settings: Settings, smtp_sink: SmtpSink, **changes: object) -> AsyncIterator[Envoi]:
    runtime = Runtime.create(settings.model_copy(update={"smtp_url": SecretStr(smtp_sink.url), **changes}))
    async with await make_client(runtime) as client:
        yield Envoi(client, runtime)
    await runtime.aclose()


@pytest.fixture
async def guarded(settings: Settings, smtp_sink: SmtpSink) -> AsyncIterator[Envoi]:
    """The default settings: private network addresses are refused."""
    async for envoi in _envoi(settings, smtp_sink):
        yield envoi


@pytest.fixture
async def trusting(
    settings: Settings, smtp_sink: SmtpSink, certificates: tuple[Path, Path, Path]
) -> AsyncIterator[Envoi]:
    """Attachment servers on our own network allowed, with our own certificate authority."""
    async for envoi in _envoi(
        settings, smtp_sink, attachment_allow_private_networks=True, attachment_ca_file=certificates[0]
    ):
        yield envoi


async def test_an_attachment_on_127_0_0_1_is_refused_by_default(
    guarded: Envoi, files: HttpsServer, smtp_sink: SmtpSink
) -> None:
    api, runtime = guarded
    await published_template(api)
    event_id = await push(api, ctx={"orderId": "A-1", "attachmentURL": files.url("/invoices/A-1.pdf")})
    await drain(runtime)
    found = await event(api, event_id)
    assert found["status"] == "delivery_failed"
    assert "attachment refused" in found["lastError"] and "127.0.0.1" in found["lastError"]
    assert files.connections == 0 and smtp_sink.messages == []


async def test_an_allowed_attachment_is_sent_with_the_email(
    trusting: Envoi, files: HttpsServer, smtp_sink: SmtpSink
) -> None:
    api, runtime = trusting
    await published_template(api)
    attachment = [{"url": files.url("/invoices/A-1.pdf"), "name": "invoice-A-1.pdf"}]
    event_id = await push(api, ctx={"orderId": "A-1", "firstName": "Ann", "attachmentURL": attachment})
    await drain(runtime)
    assert (await event(api, event_id))["status"] == "processed"
    [received] = await smtp_sink.wait_for(1)
    message = received.message
    assert message.get_content_type() == "multipart/mixed"
    [part] = list(message.iter_attachments())
    assert part.get_filename() == "invoice-A-1.pdf" and part.get_content_type() == "application/pdf"
    assert part.get_content() == PDF
    body = message.get_body(("plain",))
    assert body is not None and "Hello Ann" in body.get_content()


async def test_an_attachment_server_that_is_down_means_a_retry(trusting: Envoi, files: HttpsServer) -> None:
    api, runtime = trusting
    await published_template(api)
    event_id = await push(api, ctx={"orderId": "A-1", "attachmentURL": files.url("/down.pdf")})
    worker = Worker(runtime.settings, runtime.sessionmaker, runtime.channels, runtime.outbound)
    assert await worker.deliver_one_batch() == 1
    found = await event(api, event_id)
    assert found["status"] == "pending" and found["errorCount"] == 1
    assert "attachment unavailable" in found["lastError"] and "503" in found["lastError"]
