"""SMS templates end to end: preview with encoding and segments, events sent to the outbox or to a real SMSC
on 127.0.0.1, proofs to seed phone numbers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from envoi.runtime import Runtime
from envoi.settings import Settings
from tests.conftest import drain, make_client
from tests.helpers import create_type, event, push
from tests.smsc import SmscPeer

CODE = {"name": "Code", "eventType": "login_code", "channel": "sms", "sms": {"text": "Your code is {{ ctx.code }}"}}


async def sms_template(api: httpx.AsyncClient, **fields: Any) -> int:
    await create_type(api, "login_code", sample={"code": "123456"})
    response = await api.post("/api/v1/templates", json=CODE | fields)
    assert response.status_code == 201, response.text
    template_id = int(response.json()["id"])
    published = await api.post(f"/api/v1/templates/{template_id}/publish")
    assert published.status_code == 200, published.text
    return template_id


async def push_code(api: httpx.AsyncClient, phone: str = "+33612345678", **fields: Any) -> int:
    body = {"wishedChannel": "sms", "mobilePhone": phone, "ctx": {"code": "987654"}} | fields
    return await push(api, type="login_code", **body)


async def test_preview_reports_encoding_and_segments(api: httpx.AsyncClient) -> None:
    template_id = await sms_template(api, variants={"ru": {"text": "Ваш код: {{ ctx.code }}"}})
    shown = (await api.post(f"/api/v1/templates/{template_id}/preview", json={})).json()
    assert (shown["text"], shown["encoding"], shown["segments"]) == ("Your code is 123456", "GSM-7", 1)
    assert shown["subject"] is None and shown["html"] is None
    russian = (await api.post(f"/api/v1/templates/{template_id}/preview", json={"language": "ru"})).json()
    assert (russian["text"], russian["encoding"], russian["segments"]) == ("Ваш код: 123456", "UCS-2", 1)
    long = await api.post(f"/api/v1/templates/{template_id}/preview", json={"ctx": {"code": "x" * 300}})
    assert long.json()["segments"] == 3


async def test_an_sms_template_has_sms_content_only(api: httpx.AsyncClient) -> None:
    await create_type(api, "login_code")
    no_text = await api.post("/api/v1/templates", json=CODE | {"sms": None})
    assert no_text.status_code == 422 and no_text.json()["error"]["field"] == "sms"
    both = await api.post("/api/v1/templates", json=CODE | {"email": {"from": "a@example.com", "subject": "x"}})
    assert both.status_code == 422 and both.json()["error"]["field"] == "email"
    html_variant = await api.post("/api/v1/templates", json=CODE | {"variants": {"fr": {"html": "<p>x</p>"}}})
    assert html_variant.status_code == 422 and html_variant.json()["error"]["field"].startswith("variants.fr")
    bad_sender = await api.post("/api/v1/templates", json=CODE | {"sms": {"text": "x", "from": "A sender name"}})
    assert bad_sender.status_code == 422 and bad_sender.json()["error"]["field"] == "sms.from"
    layout = await api.post("/api/v1/templates", json=CODE | {"layout": "brand"})
    assert layout.status_code == 422 and layout.json()["error"]["field"] == "layout"


async def test_an_sms_event_goes_to_the_outbox_by_default(api: httpx.AsyncClient, runtime: Runtime) -> None:
    await sms_template(api)
    event_id = await push_code(api)
    await drain(runtime)
    sent = await event(api, event_id)
    assert sent["status"] == "processed" and sent["channel"] == "sms"
    [message] = sent["messages"]
    assert (message["channel"], message["address"], message["status"]) == ("sms", "+33612345678", "sent")
    [captured] = (await api.get("/api/v1/outbox")).json()
    assert (captured["channel"], captured["to"], captured["text"]) == ("sms", "+33612345678", "Your code is 987654")
    assert (captured["encoding"], captured["segments"], captured["subject"]) == ("GSM-7", 1, None)


@pytest.fixture
async def smpp_envoi(settings: Settings, smsc: SmscPeer) -> AsyncIterator[tuple[httpx.AsyncClient, Runtime]]:
    runtime = Runtime.create(settings.model_copy(update={"smpp_url": SecretStr(smsc.url)}))
    async with await make_client(runtime) as client:
        yield client, runtime
    await runtime.aclose()


async def test_an_sms_event_reaches_the_smsc(smpp_envoi: tuple[httpx.AsyncClient, Runtime], smsc: SmscPeer) -> None:
    api, runtime = smpp_envoi
    await sms_template(api, sms={"text": "Your code is {{ ctx.code }}", "from": "MyShop"})
    event_id = await push_code(api)
    refused = await push_code(api, phone="+33600000000")
    smsc.refuse("+33600000000")
    await drain(runtime)
    assert smsc.messages() == [("33612345678", "Your code is 987654")]
    assert smsc.submits[0].source == "MyShop"
    sent = await event(api, event_id)
    assert sent["status"] == "processed" and sent["messages"][0]["providerId"] == "m1"
    failed = await event(api, refused)
    assert failed["status"] == "delivery_failed" and "invalid destination address" in failed["lastError"]
    quarantine = (await api.get("/api/v1/quarantine")).json()
    assert [(q["channel"], q["address"]) for q in quarantine] == [("sms", "+33600000000")]


async def test_sms_proofs_go_to_seed_phone_numbers(
    smpp_envoi: tuple[httpx.AsyncClient, Runtime], smsc: SmscPeer
) -> None:
    api, _runtime = smpp_envoi
    template_id = await sms_template(api)
    seed = {"label": "My phone", "address": "+33 6 11 22 33 44"}
    added = await api.post(f"/api/v1/templates/{template_id}/seeds", json=seed)
    assert added.status_code == 201 and added.json()["address"] == "+33611223344"
    bad = await api.post(f"/api/v1/templates/{template_id}/seeds", json={"label": "x", "address": "me@example.com"})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "address"
    [proof] = (await api.post(f"/api/v1/templates/{template_id}/proof")).json()
    assert proof["status"] == "sent"
    assert smsc.messages() == [("33611223344", "[Proof] Your code is 123456")]
