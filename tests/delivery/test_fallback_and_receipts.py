"""Channel choice (wished, else the event type's default), fallback to another channel when the first fails
for good, and delivery receipts that change a message's status — against a real SMSC and a real SMTP server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, NamedTuple

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import update

from envoi.channels.base import Receipt
from envoi.delivery.models import Message
from envoi.delivery.receipts import record_receipt
from envoi.runtime import Runtime
from envoi.settings import Settings
from tests.conftest import drain, make_client
from tests.helpers import create_type, event, push
from tests.smsc import SmscPeer
from tests.smtp_sink import SmtpSink

EMAIL = {"from": "Shop <shop@example.com>", "subject": "Your code", "text": "Your code is {{ ctx.code }}"}


class Envoi(NamedTuple):
    api: httpx.AsyncClient
    runtime: Runtime


@pytest.fixture
async def envoi(settings: Settings, smsc: SmscPeer, smtp_sink: SmtpSink) -> AsyncIterator[Envoi]:
    urls = {"smpp_url": SecretStr(smsc.url), "smtp_url": SecretStr(smtp_sink.url)}
    runtime = Runtime.create(settings.model_copy(update=urls))
    async with await make_client(runtime) as client:
        yield Envoi(client, runtime)
    await runtime.aclose()


async def login_code_type(api: httpx.AsyncClient, **channels: Any) -> None:
    await create_type(api, "login_code", sample={"code": "123456"}, **channels)
    for body in (
        {"name": "SMS", "channel": "sms", "sms": {"text": "Your code is {{ ctx.code }}"}},
        {"name": "Email", "channel": "email", "email": EMAIL},
    ):
        created = await api.post("/api/v1/templates", json=body | {"eventType": "login_code"})
        assert created.status_code == 201, created.text
        assert (await api.post(f"/api/v1/templates/{created.json()['id']}/publish")).status_code == 200


async def message_status(api: httpx.AsyncClient, event_id: int, wanted: str) -> dict[str, Any]:
    for _ in range(200):
        [message] = (await event(api, event_id))["messages"]
        if message["status"] == wanted:
            return dict(message)
        await asyncio.sleep(0.05)
    raise AssertionError(f"the message stayed {message['status']}")


async def test_the_event_types_default_channel_is_used_when_none_is_wished(envoi: Envoi, smsc: SmscPeer) -> None:
    api, runtime = envoi
    await login_code_type(api, defaultChannel="sms")
    event_id = await push(api, type="login_code", mobilePhone="+33612345678", email=None, ctx={"code": "1"})
    await drain(runtime)
    assert (await event(api, event_id))["channel"] == "sms"
    assert smsc.messages() == [("33612345678", "Your code is 1")]
    missing = await api.post("/api/v1/events", json={"type": "login_code", "email": "ann@example.com"})
    assert missing.status_code == 422 and missing.json()["error"]["field"] == "mobilePhone"


async def test_receipts_change_the_message_status(envoi: Envoi, smsc: SmscPeer) -> None:
    api, runtime = envoi
    await login_code_type(api)
    smsc.receipt_state["33622222222"] = "UNDELIV"
    delivered = await push(api, type="login_code", wishedChannel="sms", mobilePhone="+33612345678", email=None)
    lost = await push(api, type="login_code", wishedChannel="sms", mobilePhone="+33622222222", email=None)
    await drain(runtime)
    assert (await message_status(api, delivered, "delivered"))["error"] is None
    assert (await message_status(api, lost, "undelivered"))["error"] == "not delivered: UNDELIV"
    assert (await event(api, lost))["status"] == "processed"  # the event did its part: the network lost it


async def test_an_sms_that_fails_for_good_falls_back_to_email(
    envoi: Envoi, smsc: SmscPeer, smtp_sink: SmtpSink
) -> None:
    api, runtime = envoi
    await login_code_type(api, defaultChannel="sms", fallbackChannel="email")
    smsc.refuse("+33600000000")
    event_id = await push(
        api, type="login_code", mobilePhone="+33600000000", email="ann@example.com", ctx={"code": "42"}
    )
    await drain(runtime)
    [received] = await smtp_sink.wait_for(1)
    assert received.rcpt_tos == ["ann@example.com"] and "Your code is 42" in received.message.get_content()
    done = await event(api, event_id)
    assert done["status"] == "processed" and done["channel"] == "email"
    assert [(m["channel"], m["status"]) for m in done["messages"]] == [("sms", "failed"), ("email", "sent")]
    reasons = [entry["reason"] or "" for entry in done["timeline"]]
    assert any(
        "sms failed for good" in r and "invalid destination address" in r and "trying email" in r for r in reasons
    )


async def test_an_event_without_a_phone_goes_straight_to_the_fallback(envoi: Envoi, smtp_sink: SmtpSink) -> None:
    api, runtime = envoi
    await login_code_type(api, defaultChannel="sms", fallbackChannel="email")
    event_id = await push(api, type="login_code", email="bob@example.com", ctx={"code": "7"})
    await drain(runtime)
    [received] = await smtp_sink.wait_for(1)
    assert received.rcpt_tos == ["bob@example.com"]
    assert (await event(api, event_id))["status"] == "processed"


async def test_the_fallback_must_be_another_channel(api: httpx.AsyncClient) -> None:
    response = await api.post(
        "/api/v1/event-types", json={"name": "t", "label": "T", "defaultChannel": "sms", "fallbackChannel": "sms"}
    )
    assert response.status_code == 422 and response.json()["error"]["field"] == "fallbackChannel"


async def test_the_fallback_gets_its_own_attempts(settings: Settings, smsc: SmscPeer, smtp_sink: SmtpSink) -> None:
    """An SMS that used up its attempts on a throttled SMSC, then was refused, still goes out by email."""
    urls = {"smpp_url": SecretStr(smsc.url), "smtp_url": SecretStr(smtp_sink.url), "retry_max_attempts": 2}
    runtime = Runtime.create(settings.model_copy(update=urls))
    try:
        async with await make_client(runtime) as api:
            await login_code_type(api, defaultChannel="sms", fallbackChannel="email")
            smsc.fail_next(1)  # throttled: attempt 1 of 2
            smsc.refuse("+33600000000")  # then refused for good
            event_id = await push(api, type="login_code", mobilePhone="+33600000000", email="ann@example.com")
            await drain(runtime)
            [received] = await smtp_sink.wait_for(1)
            assert received.rcpt_tos == ["ann@example.com"]
            assert (await event(api, event_id))["status"] == "processed"
    finally:
        await runtime.aclose()


async def test_a_reused_provider_id_only_marks_the_newest_message(envoi: Envoi, smsc: SmscPeer) -> None:
    api, runtime = envoi
    await login_code_type(api)
    smsc.receipts = False
    sms = {"type": "login_code", "wishedChannel": "sms", "mobilePhone": "+33612345678", "email": None}
    older, newer = await push(api, **sms), await push(api, **sms)
    await drain(runtime)
    async with runtime.transaction() as session:  # as if the SMSC had restarted and counted from m1 again
        await session.execute(update(Message).values(provider_id="m1"))
        assert await record_receipt(session, "sms", "smpp", Receipt("m1", False, "UNDELIV")) == 1
    assert (await event(api, older))["messages"][0]["status"] == "sent"
    assert (await event(api, newer))["messages"][0]["status"] == "undelivered"
