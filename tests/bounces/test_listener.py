"""The issue's check, end to end on both databases: an email goes out through a real SMTP server with its VERP
return path, a report comes back over SMTP to the bounce listener on 127.0.0.1, and the message, the address,
the event's timeline and the webhooks show it."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import aiosmtplib
import httpx
import pytest
from sqlalchemy import select

from envoi.access.groups import add_member
from envoi.access.operators import create_operator
from envoi.app import create_app
from envoi.bounces.listener import listening_port, start_bounces
from envoi.bounces.verp import make_return_path
from envoi.runtime import Runtime
from envoi.settings import Settings
from envoi.tracking.secret import tracking_secret
from envoi.webhooks.models import WebhookCall
from tests.bounces import samples
from tests.conftest import drain
from tests.helpers import event, published_template, push
from tests.smtp_sink import ReceivedEmail, SmtpSink

DOMAIN = "bounces.shop.test"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "bounce_domain": DOMAIN,
            "bounce_listen_port": 0,  # any free port
            "bounce_soft_limit": 2,
            "bounce_max_bytes": 64 * 1024,
            "webhook_allow_private_networks": True,
        }
    )


@pytest.fixture
async def listener(smtp_runtime: Runtime) -> AsyncIterator[int]:
    """The bounce listener on the test's event loop, as ``envoi serve`` starts it; yields its port."""
    server = await start_bounces(smtp_runtime.settings, smtp_runtime.sessionmaker)
    assert server is not None
    yield listening_port(server)
    server.close()
    await server.wait_closed()


async def report(port: int, raw: bytes, to: str, mail_from: str = "") -> str:
    """Send a report as a remote server does (from the null sender); returns the listener's reply to it."""
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port) as client:
        errors, reply = await client.sendmail(mail_from, [to], raw)  # raises unless 250
    assert errors == {} and reply.startswith("2.0.0 Recorded as bounce"), reply
    return reply


async def sent_emails(api: httpx.AsyncClient, runtime: Runtime, sink: SmtpSink, *addresses: str) -> list[ReceivedEmail]:
    """Push one event per address, deliver them to the SMTP sink, and return what it received, in order."""
    await published_template(api)
    for address in addresses:
        await push(api, email=address)
    await drain(runtime)
    received = await sink.wait_for(len(addresses))
    return sorted(received, key=lambda r: addresses.index(r.rcpt_tos[0]))


def event_id_of(received: ReceivedEmail) -> int:
    assert received.mail_from.startswith("bounce+") and received.mail_from.endswith(f"@{DOMAIN}")
    return int(received.mail_from.removeprefix("bounce+").split("-")[0])


async def bounces(api: httpx.AsyncClient, **query: Any) -> list[dict[str, Any]]:
    response = await api.get("/api/v1/bounces", params=query)
    assert response.status_code == 200, response.text
    return list(response.json())


async def quarantined(api: httpx.AsyncClient) -> dict[str, str]:
    return {q["address"]: q["reason"] for q in (await api.get("/api/v1/quarantine")).json()}


async def console_page(runtime: Runtime, path: str) -> str:
    """A console page, as a viewer logged in sees it."""
    async with runtime.transaction() as session:
        viewer = await create_operator(session, email="viewer@example.com", name="Viewer", password="x" * 16)
        await add_member(session, "viewers", viewer.id)
    app = create_app(runtime.settings, run_worker=False, runtime=runtime)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://envoi.test") as client:
        token = re.search(r'name="csrf_token" value="([^"]+)"', (await client.get("/console/login")).text)
        assert token is not None
        login = {"email": "viewer@example.com", "password": "x" * 16, "csrf_token": token.group(1)}
        assert (await client.post("/console/login", data=login)).status_code == 303
        answer = await client.get(path)
        assert answer.status_code == 200, answer.text
        return answer.text


async def test_a_dsn_for_a_sent_message_marks_it_bounced_and_quarantines_the_address(
    smtp_runtime: Runtime, smtp_api: httpx.AsyncClient, smtp_sink: SmtpSink, listener: int
) -> None:
    hook = await smtp_api.post(
        "/api/v1/webhooks", json={"url": "http://127.0.0.1:9/hook", "changes": ["message.bounced"]}
    )
    assert hook.status_code == 201, hook.text
    (sent,) = await sent_emails(smtp_api, smtp_runtime, smtp_sink, "ada@example.com")
    event_id, verp = event_id_of(sent), sent.mail_from
    assert str(sent.message["From"]) == "Shop <shop@example.com>"  # VERP changes the envelope only

    dsn = samples.postfix_dsn("ada@example.com", to=verp, return_path=verp, message_id=str(sent.message["Message-ID"]))
    await report(listener, dsn, to=verp)

    found = await event(smtp_api, event_id)
    (message,) = found["messages"]
    assert message["status"] == "bounced" and message["error"].startswith("bounced: 5.1.1 550 5.1.1")
    assert found["status"] == "processed"  # the provider took it: the event's own status stands
    last = found["timeline"][-1]
    assert last["status"] == "bounced" and last["reason"].startswith(f"message {message['id']}: 5.1.1 550 5.1.1")
    assert (await quarantined(smtp_api))["ada@example.com"].startswith("hard bounce: 5.1.1")
    (bounce,) = await bounces(smtp_api, address="ada@example.com")
    assert bounce["kind"] == "hard" and bounce["eventId"] == event_id and bounce["messageId"] == message["id"]
    assert bounce["statusCode"] == "5.1.1" and bounce["reporter"] == "mx.example.net"

    async with smtp_runtime.transaction() as session:
        (call,) = (await session.scalars(select(WebhookCall))).all()
    assert call.change == "message.bounced" and call.body["event"]["id"] == event_id
    assert call.body["message"]["status"] == "bounced" and call.body["message"]["id"] == message["id"]

    # The same report again changes nothing more and announces nothing more.
    await report(listener, dsn, to=verp)
    async with smtp_runtime.transaction() as session:
        assert len((await session.scalars(select(WebhookCall))).all()) == 1

    page = await console_page(smtp_runtime, f"/console/events/{event_id}")
    assert '<span class="status status-bounced">' in page and "Recipient address rejected: User unknown" in page

    next_one = await push(smtp_api, email="ada@example.com", ctx={"orderId": "A-2"})
    await drain(smtp_runtime)
    after = await event(smtp_api, next_one)
    assert after["status"] == "ignored" and "quarantined" in after["timeline"][-1]["reason"]
    assert len(smtp_sink.messages) == 1


async def test_soft_bounces_are_counted_then_quarantine_the_address(
    smtp_runtime: Runtime, smtp_api: httpx.AsyncClient, smtp_sink: SmtpSink, listener: int
) -> None:
    first, second = await sent_emails(smtp_api, smtp_runtime, smtp_sink, "bo@example.com", "bo@example.com")
    full = {"status": "5.2.2", "diagnostic": "smtp; 552 5.2.2 <bo@example.com>: Mailbox full"}
    await report(listener, samples.postfix_dsn("bo@example.com", to=first.mail_from, **full), first.mail_from)
    found = await event(smtp_api, event_id_of(first))
    assert found["messages"][0]["status"] == "sent" and found["timeline"][-1]["status"] == "soft_bounce"
    assert "bo@example.com" not in await quarantined(smtp_api)

    await report(listener, samples.exim_quota("bo@example.com"), second.mail_from)
    reason = (await quarantined(smtp_api))["bo@example.com"]
    assert reason.startswith("2 soft bounces in 7 days, the last: mailbox is full"), reason
    assert [b["kind"] for b in await bounces(smtp_api, address="bo@example.com")] == ["soft", "soft"]


async def test_a_feedback_loop_complaint_quarantines_the_address(
    smtp_runtime: Runtime, smtp_api: httpx.AsyncClient, smtp_sink: SmtpSink, listener: int
) -> None:
    (sent,) = await sent_emails(smtp_api, smtp_runtime, smtp_sink, "carl@example.com")
    arf = samples.yahoo_arf("carl@example.com", return_path=sent.mail_from, message_id=str(sent.message["Message-ID"]))
    await report(listener, arf, to=f"fbl@{DOMAIN}", mail_from="feedback@arf.mail.yahoo.com")
    assert (await quarantined(smtp_api))["carl@example.com"].startswith("complaint: complaint (abuse)")
    found = await event(smtp_api, event_id_of(sent))
    assert found["messages"][0]["status"] == "sent" and found["timeline"][-1]["status"] == "complaint"


async def test_a_bounce_without_verp_is_tied_by_its_message_id_and_address(
    smtp_runtime: Runtime, smtp_api: httpx.AsyncClient, smtp_sink: SmtpSink, listener: int
) -> None:
    """A server that bounces to postmaster@ with the original quoted in its text."""
    first, second = await sent_emails(smtp_api, smtp_runtime, smtp_sink, "dan@example.com", "eve@example.com")
    message_id = str(first.message["Message-ID"])
    wrong_address = samples.postfix_plain("eve@example.com", message_id=message_id)
    await report(listener, wrong_address, to=f"postmaster@{DOMAIN}")
    (ignored,) = await bounces(smtp_api, kind="ignored")
    assert ignored["messageId"] is None and "another address" in ignored["diagnostic"]

    await report(listener, samples.postfix_plain("dan@example.com", message_id=message_id), "postmaster")
    assert (await event(smtp_api, event_id_of(first)))["messages"][0]["status"] == "bounced"
    assert (await event(smtp_api, event_id_of(second)))["messages"][0]["status"] == "sent"
    assert set(await quarantined(smtp_api)) == {"dan@example.com"}


async def test_forged_unreadable_and_delay_reports_are_kept_as_ignored(
    smtp_runtime: Runtime, smtp_api: httpx.AsyncClient, smtp_sink: SmtpSink, listener: int
) -> None:
    (sent,) = await sent_emails(smtp_api, smtp_runtime, smtp_sink, "fay@example.com")
    event_id = event_id_of(sent)
    forged = f"bounce+{event_id}-aaaaaaaaaaaaaaaa@{DOMAIN}"
    await report(listener, samples.postfix_dsn("fay@example.com", to=forged), forged)
    await report(listener, b"\x00\xff garbage \x80\r\n", f"postmaster@{DOMAIN}")
    delayed = samples.postfix_dsn(
        "fay@example.com", to=sent.mail_from, action="delayed", status="4.4.1", diagnostic="X-Postfix; timed out"
    )
    await report(listener, delayed, sent.mail_from)

    newest_first = await bounces(smtp_api)
    assert [b["kind"] for b in newest_first] == ["ignored", "ignored", "ignored"]
    assert newest_first[0]["messageId"] is not None and newest_first[0]["diagnostic"].startswith("delayed, still")
    assert newest_first[1]["diagnostic"] == "not a bounce report: (no subject)"
    assert newest_first[2]["eventId"] is None and "is not one Envoi signed" in newest_first[2]["diagnostic"]
    found = await event(smtp_api, event_id)
    assert found["messages"][0]["status"] == "sent" and found["timeline"][-1]["status"] == "report_ignored"
    assert await quarantined(smtp_api) == {}


async def test_the_listener_is_no_relay_and_refuses_what_it_cannot_take(
    smtp_runtime: Runtime, smtp_api: httpx.AsyncClient, listener: int
) -> None:
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=listener) as client:
        for address in ("ada@example.com", f"info@{DOMAIN}", "postmaster@example.com"):
            with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as refused:
                await client.sendmail("spammer@example.net", [address], b"Subject: hi\r\n\r\nrelay me\r\n")
            assert refused.value.recipients[0].code == 550
        with pytest.raises(aiosmtplib.SMTPResponseException) as too_big:
            await client.sendmail("", [f"postmaster@{DOMAIN}"], b"Subject: big\r\n\r\n" + b"x" * 70_000 + b"\r\n")
        assert too_big.value.code == 552

        # A report about an email still being sent is refused for now: its server tries again later.
        await published_template(smtp_api)
        waiting = await push(smtp_api)  # pending: no worker runs in this test
        async with smtp_runtime.transaction() as session:
            verp = make_return_path(waiting, await tracking_secret(session, smtp_runtime.settings), DOMAIN)
        with pytest.raises(aiosmtplib.SMTPResponseException) as later:
            await client.sendmail("", [verp], samples.postfix_dsn(to=verp))
        assert later.value.code == 451
    assert await bounces(smtp_api) == []
