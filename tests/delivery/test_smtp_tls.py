"""Configured the way a user does (ENVOI_SMTP_URL with STARTTLS and credentials), Envoi delivers over TLS."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from pydantic import SecretStr

from envoi.runtime import Runtime
from envoi.settings import Settings
from tests.conftest import drain, make_client
from tests.helpers import event, published_template, push
from tests.smtp_sink import SmtpSink, start_sink


@pytest.fixture
def tls_sink() -> Iterator[SmtpSink]:
    sink = start_sink(tls=True, username="envoi", password="s3cret:/@pass")
    yield sink
    sink.stop()


@pytest.fixture
async def tls_runtime(settings: Settings, tls_sink: SmtpSink) -> AsyncIterator[Runtime]:
    assert tls_sink.url.startswith("smtp://envoi:") and tls_sink.url.endswith("?starttls=true")
    configured = settings.model_copy(update={"smtp_url": SecretStr(tls_sink.url), "smtp_ca_file": tls_sink.ca_file})
    runtime = Runtime.create(configured)
    yield runtime
    await runtime.aclose()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_starttls_with_auth_delivers(tls_runtime: Runtime, tls_sink: SmtpSink) -> None:
    async with await make_client(tls_runtime) as api:
        await published_template(api)
        event_id = await push(api, email="secure@example.com")
        await drain(tls_runtime)
        (received,) = await tls_sink.wait_for(1)
        assert received.rcpt_tos == ["secure@example.com"]
        assert received.message["Subject"] == "Order A-1 confirmed"
        assert (await event(api, event_id))["status"] == "processed"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_untrusted_certificate_is_retried_not_sent_in_clear(settings: Settings, tls_sink: SmtpSink) -> None:
    runtime = Runtime.create(settings.model_copy(update={"smtp_url": SecretStr(tls_sink.url), "retry_max_attempts": 2}))
    try:
        async with await make_client(runtime) as client:
            await published_template(client)
            event_id = await push(client)
            await drain(runtime)
            stored = await event(client, event_id)
        assert stored["status"] == "too_old"
        assert "certificate" in stored["lastError"].lower()
        assert tls_sink.messages == []
    finally:
        await runtime.aclose()
