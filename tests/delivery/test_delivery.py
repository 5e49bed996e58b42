"""Events become emails at a real SMTP server on 127.0.0.1, and every failure path ends in the right status."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx

from envoi.delivery.worker import Worker
from envoi.runtime import Runtime
from tests.conftest import drain
from tests.helpers import event, published_template, push
from tests.smtp_sink import SmtpSink


async def test_event_becomes_a_personalized_email(
    smtp_api: httpx.AsyncClient, smtp_runtime: Runtime, smtp_sink: SmtpSink
) -> None:
    await published_template(
        smtp_api,
        subject="Commande {{ ctx.orderId }} — merci {{ ctx.firstName }}",
        html="<p>Bonjour {{ ctx.firstName }}</p>{% for i in ctx.items %}<li>{{ i.name }}</li>{% endfor %}"
        "<p>{{ event.externalId }}</p>",
        text="Bonjour {{ ctx.firstName }}, {{ event.email }}",
    )
    event_id = await push(
        smtp_api,
        email="ada@example.com",
        externalId="cust-7",
        ctx={"orderId": "A-42", "firstName": "Ada <script>", "items": [{"name": "Pen & ink"}, {"name": "Book"}]},
    )
    await drain(smtp_runtime)

    (received,) = await smtp_sink.wait_for(1)
    mail = received.message
    assert received.rcpt_tos == ["ada@example.com"]
    assert mail["Subject"] == "Commande A-42 — merci Ada <script>"  # subjects are not HTML: no escaping
    assert mail["From"] == "Shop <shop@example.com>"
    assert mail["Reply-To"] == "help@example.com"
    assert mail["Message-ID"].startswith(f"<{event_id}.") and mail["Message-ID"].endswith("@envoi.localhost>")
    html = mail.get_body(("html",)).get_content()
    text = mail.get_body(("plain",)).get_content()
    assert "<p>Bonjour Ada &lt;script&gt;</p>" in html  # HTML is auto-escaped
    assert "<li>Pen &amp; ink</li><li>Book</li>" in html
    assert "<p>cust-7</p>" in html
    assert text.strip() == "Bonjour Ada <script>, ada@example.com"

    stored = await event(smtp_api, event_id)
    assert stored["status"] == "processed"
    assert stored["template"]["version"] == 1
    (message,) = stored["messages"]
    assert message["status"] == "sent"
    assert message["providerId"]
    assert message["address"] == "ada@example.com"
    assert message["templateVersion"] == 1
    assert [t["status"] for t in stored["timeline"]] == ["received", "processed"]


async def test_no_published_template_is_routing_failed_and_never_retried(
    smtp_api: httpx.AsyncClient, smtp_runtime: Runtime, smtp_sink: SmtpSink
) -> None:
    template = await published_template(smtp_api)
    await smtp_api.post(f"/api/v1/templates/{template['id']}/unpublish")
    event_id = await push(smtp_api)
    await drain(smtp_runtime)
    stored = await event(smtp_api, event_id)
    assert stored["status"] == "routing_failed"
    assert "no published email template" in stored["lastError"]
    assert stored["errorCount"] == 0 and stored["messages"] == []
    assert smtp_sink.messages == []


async def test_expired_event_is_too_old_and_not_sent(
    smtp_api: httpx.AsyncClient, smtp_runtime: Runtime, smtp_sink: SmtpSink
) -> None:
    await published_template(smtp_api)
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    event_id = await push(smtp_api, expiration=past)
    await drain(smtp_runtime)
    assert (await event(smtp_api, event_id))["status"] == "too_old"
    assert smtp_sink.messages == []


async def test_temporary_smtp_failure_is_retried_then_processed(
    smtp_api: httpx.AsyncClient, smtp_runtime: Runtime, smtp_sink: SmtpSink
) -> None:
    await published_template(smtp_api)
    smtp_sink.fail_next_data(1, code=451, text="4.3.0 Try again later")
    event_id = await push(smtp_api)
    await drain(smtp_runtime)
    stored = await event(smtp_api, event_id)
    assert stored["status"] == "processed"
    assert stored["errorCount"] == 1
    (message,) = stored["messages"]
    assert message["status"] == "sent" and message["attempts"] == 2
    statuses = [t["status"] for t in stored["timeline"]]
    assert statuses == ["received", "pending", "processed"]
    assert "451" in stored["timeline"][1]["reason"]
    assert len(smtp_sink.messages) == 1


async def test_retries_exhausted_is_too_old(
    smtp_api: httpx.AsyncClient, smtp_runtime: Runtime, smtp_sink: SmtpSink
) -> None:
    await published_template(smtp_api)
    smtp_sink.fail_next_data(smtp_runtime.settings.retry_max_attempts, code=421, text="4.7.0 Busy")
    event_id = await push(smtp_api)
    await drain(smtp_runtime)
    stored = await event(smtp_api, event_id)
    assert stored["status"] == "too_old"
    assert f"gave up after {smtp_runtime.settings.retry_max_attempts} attempts" in stored["lastError"]
    assert stored["messages"][0]["status"] == "failed"
    assert smtp_sink.messages == []


async def test_refused_recipient_fails_and_is_quarantined(
    smtp_api: httpx.AsyncClient, smtp_runtime: Runtime, smtp_sink: SmtpSink
) -> None:
    await published_template(smtp_api)
    smtp_sink.reject_recipient("gone@example.com", code=550, text="5.1.1 User unknown")
    first = await push(smtp_api, email="gone@example.com")
    await drain(smtp_runtime)
    stored = await event(smtp_api, first)
    assert stored["status"] == "delivery_failed"
    assert stored["messages"][0]["status"] == "failed"
    assert "550" in stored["messages"][0]["error"]
    quarantine = (await smtp_api.get("/api/v1/quarantine")).json()
    assert [(q["channel"], q["address"]) for q in quarantine] == [("email", "gone@example.com")]

    second = await push(smtp_api, email="gone@example.com")
    await drain(smtp_runtime)
    assert (await event(smtp_api, second))["status"] == "ignored"
    released = await smtp_api.delete("/api/v1/quarantine/email/gone@example.com")
    assert released.status_code == 204
    assert (await smtp_api.get("/api/v1/quarantine")).json() == []


async def test_refused_message_fails_without_quarantine(
    smtp_api: httpx.AsyncClient, smtp_runtime: Runtime, smtp_sink: SmtpSink
) -> None:
    await published_template(smtp_api)
    smtp_sink.fail_next_data(1, code=554, text="5.7.1 Message rejected as spam")
    event_id = await push(smtp_api)
    await drain(smtp_runtime)
    assert (await event(smtp_api, event_id))["status"] == "delivery_failed"
    assert (await smtp_api.get("/api/v1/quarantine")).json() == []


async def test_paused_template_holds_events_until_resumed(
    smtp_api: httpx.AsyncClient, smtp_runtime: Runtime, smtp_sink: SmtpSink
) -> None:
    template = await published_template(smtp_api)
    paused = await smtp_api.post(f"/api/v1/templates/{template['id']}/pause")
    assert paused.json()["state"] == "paused"
    event_id = await push(smtp_api)
    await drain(smtp_runtime)
    assert (await event(smtp_api, event_id))["status"] == "paused"
    assert smtp_sink.messages == []

    resumed = await smtp_api.post(f"/api/v1/templates/{template['id']}/resume")
    assert resumed.json() == {"id": template["id"], "state": "published", "liveVersion": 1, "releasedEvents": 1}
    await drain(smtp_runtime)
    stored = await event(smtp_api, event_id)
    assert stored["status"] == "processed"
    assert [t["status"] for t in stored["timeline"]] == ["received", "paused", "pending", "processed"]
    assert len(await smtp_sink.wait_for(1)) == 1


async def test_scheduled_event_waits_for_its_time(
    smtp_api: httpx.AsyncClient, smtp_runtime: Runtime, smtp_sink: SmtpSink
) -> None:
    await published_template(smtp_api)
    later = await push(smtp_api, scheduled=(datetime.now(UTC) + timedelta(hours=1)).isoformat())
    soon = await push(smtp_api, scheduled=(datetime.now(UTC) + timedelta(seconds=0.5)).isoformat())
    worker = Worker(smtp_runtime.settings, smtp_runtime.sessionmaker, smtp_runtime.channels, smtp_runtime.outbound)
    assert await worker.deliver_one_batch() == 0  # neither is due yet
    await asyncio.sleep(0.6)
    assert await worker.deliver_one_batch() == 1
    assert (await event(smtp_api, soon))["status"] == "processed"
    assert (await event(smtp_api, later))["status"] == "pending"
    assert len(smtp_sink.messages) == 1


async def test_published_version_is_immutable_while_the_draft_changes(
    smtp_api: httpx.AsyncClient, smtp_runtime: Runtime, smtp_sink: SmtpSink
) -> None:
    template = await published_template(smtp_api, subject="Version one")
    draft = {"name": "t", "eventType": "order_confirmation", "email": {"from": "a@example.com", "subject": "Two"}}
    draft["email"]["text"] = "two"
    assert (await smtp_api.put(f"/api/v1/templates/{template['id']}", json=draft)).status_code == 200
    await push(smtp_api)
    await drain(smtp_runtime)
    assert (await smtp_sink.wait_for(1))[0].message["Subject"] == "Version one"

    assert (await smtp_api.post(f"/api/v1/templates/{template['id']}/publish")).json() == {"version": 2}
    await push(smtp_api)
    await drain(smtp_runtime)
    assert (await smtp_sink.wait_for(2))[1].message["Subject"] == "Two"
