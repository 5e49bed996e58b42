"""Adobe's own example of a workflow: SMS events that failed are sent again as emails, each once."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from pydantic import SecretStr

from envoi.runtime import Runtime
from envoi.settings import Settings
from tests.conftest import drain, make_client
from tests.helpers import create_type, event, push
from tests.smsc import SmscPeer
from tests.smtp_sink import SmtpSink
from tests.workflows.conftest import definition, settle

RECYCLE = definition(
    {"name": "start", "kind": "scheduler", "settings": {"cron": "*/10 * * * *"}, "next": ["recycle"]},
    {
        "name": "recycle",
        "kind": "recycle_failed_events",
        "settings": {"from_channel": "sms", "to_channel": "email", "failed_within": "1h"},
        "next": ["end"],
    },
    {"name": "end", "kind": "end"},
)


@pytest.fixture
async def envoi(
    settings: Settings, smsc: SmscPeer, smtp_sink: SmtpSink
) -> AsyncIterator[tuple[httpx.AsyncClient, Runtime]]:
    """SMS to the SMSC on 127.0.0.1, emails to the SMTP sink."""
    runtime = Runtime.create(
        settings.model_copy(update={"smpp_url": SecretStr(smsc.url), "smtp_url": SecretStr(smtp_sink.url)})
    )
    async with await make_client(runtime) as client:
        yield client, runtime
    await runtime.aclose()


async def _publish(api: httpx.AsyncClient, body: dict[str, object]) -> None:
    created = await api.post("/api/v1/templates", json=body)
    assert created.status_code == 201, created.text
    published = await api.post(f"/api/v1/templates/{created.json()['id']}/publish")
    assert published.status_code == 200, published.text


async def test_failed_sms_events_become_delivered_emails_once(
    envoi: tuple[httpx.AsyncClient, Runtime], smsc: SmscPeer, smtp_sink: SmtpSink
) -> None:
    api, runtime = envoi
    await create_type(api, "delivery_slot", sample={"slot": "9-11"})
    await _publish(
        api,
        {"name": "Slot SMS", "eventType": "delivery_slot", "channel": "sms", "sms": {"text": "Slot {{ ctx.slot }}"}},
    )
    email = {"from": "shop@example.com", "subject": "Your slot: {{ ctx.slot }}", "text": "Slot {{ ctx.slot }}"}
    await _publish(api, {"name": "Slot email", "eventType": "delivery_slot", "email": email})

    def slot(phone: str, address: str | None, hours: str) -> dict[str, object]:
        return {
            "type": "delivery_slot",
            "wishedChannel": "sms",
            "mobilePhone": phone,
            "email": address,
            "ctx": {"slot": hours},
        }

    delivered = await push(api, **slot("+33611111111", "ok@example.com", "8-10"))
    failed = [
        await push(api, **slot("+33600000001", "ada@example.com", "9-11")),
        await push(api, **slot("+33600000002", "bob@example.com", "14-16")),
    ]
    no_email = await push(api, **slot("+33600000003", None, "17-19"))
    for number in ("+33600000001", "+33600000002", "+33600000003"):
        smsc.refuse(number)
    await drain(runtime)
    assert [(await event(api, i))["status"] for i in (delivered, *failed, no_email)] == [
        "processed", "delivery_failed", "delivery_failed", "delivery_failed"
    ]  # fmt: skip

    created = await api.post("/api/v1/workflows", json={"name": "recycle-sms", "definition": RECYCLE})
    workflow_id = created.json()["id"]
    run = await api.post(f"/api/v1/workflows/{workflow_id}/runs")
    await settle(runtime)
    await drain(runtime)

    mails = await smtp_sink.wait_for(2)
    assert sorted((m.rcpt_tos[0], m.message["Subject"]) for m in mails) == [
        ("ada@example.com", "Your slot: 9-11"),
        ("bob@example.com", "Your slot: 14-16"),
    ]
    steps = (await api.get(f"/api/v1/workflows/{workflow_id}/runs/{run.json()['id']}")).json()["steps"]
    recycle = next(step for step in steps if step["activity"] == "recycle")
    assert recycle["count"] == 2 and recycle["status"] == "done"
    assert any(f"event {no_email} not recycled" in line for line in recycle["logs"])  # it has no email address
    listed = (await api.get("/api/v1/events", params={"type": "delivery_slot"})).json()
    items = [e for e in [await event(api, e["id"]) for e in listed] if e["channel"] == "email"]
    assert sorted(e["origin"] for e in items) == sorted(f"recycled from event {i}" for i in failed)
    assert {(e["status"], e["channel"]) for e in items} == {("processed", "email")}

    again = await api.post(f"/api/v1/workflows/{workflow_id}/runs")  # a second run recycles nothing twice
    await settle(runtime)
    await drain(runtime)
    steps = (await api.get(f"/api/v1/workflows/{workflow_id}/runs/{again.json()['id']}")).json()["steps"]
    assert next(step for step in steps if step["activity"] == "recycle")["count"] == 0
    assert len(smtp_sink.messages) == 2
