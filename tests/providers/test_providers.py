"""Providers as named instances: configured through the API or a settings file, secrets masked, one default
and one backup per channel, failover to the backup, and Kannel's delivery reports through Envoi's own route."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from pydantic import SecretStr

from envoi.app import create_app
from envoi.delivery.worker import Worker
from envoi.providers.config import ProviderConfigError
from envoi.providers.routing import REFUSED_BATCH
from envoi.runtime import Runtime
from envoi.settings import Settings
from tests.conftest import drain, make_client
from tests.helpers import create_type, event, published_template, push
from tests.kannel import KannelPeer
from tests.processes import free_port
from tests.smtp_sink import SmtpSink, start_sink

KANNEL = {"sendsms_url": "http://kannel.example.net:13013/cgi-bin/sendsms", "username": "envoi", "password": "pw1"}


async def add(
    api: httpx.AsyncClient, name: str, kind: str, settings: dict[str, Any], role: str | None = None
) -> dict[str, Any]:
    response = await api.post(
        "/api/v1/providers", json={"name": name, "kind": kind, "role": role, "settings": settings}
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


async def test_a_provider_is_configured_through_the_api_with_its_secrets_masked(api: httpx.AsyncClient) -> None:
    created = await add(api, "kannel-eu", "kannel", KANNEL | {"receipt_secret": "s3cret"}, role="default")
    assert (created["channel"], created["platform"], created["role"], created["source"]) == (
        "sms",
        None,
        "default",
        "api",
    )
    assert created["settings"]["password"] == "**********" and created["settings"]["receipt_secret"] == "**********"
    assert created["settings"]["max_parts"] == 10  # the kind's defaults are shown
    listed = (await api.get("/api/v1/providers")).json()
    assert [p["name"] for p in listed] == ["kannel-eu"] and "pw1" not in str(listed) and "s3cret" not in str(listed)

    # A secret sent back masked is kept; the fields given change.
    changed = await api.patch(
        "/api/v1/providers/kannel-eu", json={"settings": {"password": "**********", "source": "Shop"}}
    )
    assert changed.status_code == 200 and changed.json()["settings"]["source"] == "Shop"
    async with api._transport.app.state.runtime.transaction() as session:  # type: ignore[attr-defined]
        from sqlalchemy import select

        from envoi.providers.models import Provider

        row = await session.scalar(select(Provider).where(Provider.name == "kannel-eu"))
        assert row is not None and row.settings["password"] == "pw1" and row.settings["source"] == "Shop"

    # Its secrets do not follow it to another address: they must be sent again.
    moved = await api.patch("/api/v1/providers/kannel-eu", json={"settings": {"sendsms_url": "http://evil.test/s"}})
    assert moved.status_code == 422 and moved.json()["error"]["field"] in (
        "settings.password",
        "settings.receipt_secret",
    )
    both = {"sendsms_url": "http://kannel2.example.net/s", "password": "pw2", "receipt_secret": "s3cret2"}
    assert (await api.patch("/api/v1/providers/kannel-eu", json={"settings": both})).status_code == 200
    audit = (await api.get("/api/v1/audit", params={"objectType": "provider"})).json()
    assert [entry["action"] for entry in audit] == ["changed", "changed", "created"] and "pw" not in str(audit)

    kinds = {k["kind"]: k for k in (await api.get("/api/v1/providers/kinds")).json()}
    assert set(kinds) == {"smtp", "smpp", "kannel", "apns", "fcm", "webpush"}
    assert kinds["apns"]["platform"] == "ios" and "team_id" in kinds["apns"]["settingsSchema"]["properties"]

    assert (await api.delete("/api/v1/providers/kannel-eu")).status_code == 204
    assert (await api.get("/api/v1/providers/kannel-eu")).status_code == 404


async def test_bad_provider_configurations_are_refused_naming_the_field(api: httpx.AsyncClient) -> None:
    cases = [
        ({"kind": "carrier-pigeon"}, "kind"),
        ({"kind": "kannel", "settings": KANNEL | {"sendsms_url": "ftp://x"}}, "settings.sendsms_url"),
        ({"kind": "kannel", "settings": {"username": "x"}}, "settings.sendsms_url"),
        ({"kind": "smtp", "settings": {"url": "smtp://relay:25?startls=true"}}, "settings"),
        ({"kind": "kannel", "settings": KANNEL, "name": "Not A Name"}, "name"),
        ({"kind": "kannel", "settings": KANNEL, "role": "primary"}, "role"),
    ]
    for body, field in cases:
        response = await api.post("/api/v1/providers", json={"name": "p"} | body)
        assert response.status_code == 422, (body, response.text)
        assert response.json()["error"]["field"] == field, (body, response.json())
    assert (await api.get("/api/v1/providers")).json() == []

    await add(api, "first", "kannel", KANNEL, role="default")
    taken = await api.post(
        "/api/v1/providers",
        json={"name": "second", "kind": "smpp", "role": "default", "settings": {"url": "smpp://a:b@smsc"}},
    )
    assert (
        taken.status_code == 409
        and "'first' is already the default provider for sms" in taken.json()["error"]["message"]
    )
    same_name = await api.post("/api/v1/providers", json={"name": "first", "kind": "kannel", "settings": KANNEL})
    assert same_name.status_code == 409 and same_name.json()["error"]["field"] == "name"
    # A push provider is the default of its platform: one per platform.
    key = ec.generate_private_key(ec.SECP256R1()).private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    webpush = {"vapid_private_key": key.decode(), "vapid_subject": "mailto:ops@example.com"}
    await add(api, "web", "webpush", webpush, role="default")
    listed = {p["name"]: p for p in (await api.get("/api/v1/providers")).json()}
    assert (listed["web"]["channel"], listed["web"]["platform"], listed["web"]["role"]) == ("push", "web", "default")
    assert "PRIVATE KEY" not in str(listed)


async def test_environment_and_file_providers_show_but_do_not_change_here(settings: Settings, tmp_path: Path) -> None:
    file = tmp_path / "providers.toml"
    file.write_text(
        """
[providers.relay-backup]
kind = "smtp"
role = "backup"
url = "smtp://envoi:hunter2@backup.example.net:2525"
connections = 2
"""
    )
    configured = settings.model_copy(
        update={"smtp_url": SecretStr("smtp://u:pw@relay.example.net:25"), "providers_file": file}
    )
    runtime = Runtime.create(configured)
    try:
        async with await make_client(runtime) as api:
            listed = {p["name"]: p for p in (await api.get("/api/v1/providers")).json()}
            assert (listed["smtp"]["source"], listed["smtp"]["role"]) == ("environment", "default")
            backup = listed["relay-backup"]
            assert (backup["source"], backup["role"], backup["settings"]["port"]) == ("file", "backup", 2525)
            assert backup["settings"]["connections"] == 2 and "hunter2" not in str(listed)
            refused = await api.delete("/api/v1/providers/relay-backup")
            assert refused.status_code == 409 and "ENVOI_PROVIDERS_FILE" in refused.json()["error"]["message"]
            assert (await api.patch("/api/v1/providers/smtp", json={"role": None})).status_code == 409
    finally:
        await runtime.aclose()

    file.write_text('[providers.broken]\nkind = "smtp"\nurl = "smtp://relay"\nport = "many"\n')
    with pytest.raises(ProviderConfigError, match=r"providers\.broken\.settings\.port"):
        Runtime.create(settings.model_copy(update={"providers_file": file}))


async def test_the_backup_provider_takes_over_when_the_default_keeps_failing(
    settings: Settings, smtp_sink: SmtpSink
) -> None:
    runtime = Runtime.create(
        settings.model_copy(update={"provider_failover_after": 3, "provider_failover_seconds": 60})
    )
    try:
        async with await make_client(runtime) as api:
            dead = f"smtp://127.0.0.1:{free_port()}"  # nothing listens there: every attempt is a temporary failure
            await add(api, "relay", "smtp", {"url": dead, "timeout": 2}, role="default")
            await add(api, "relay-backup", "smtp", {"url": smtp_sink.url}, role="backup")
            await published_template(api)
            ids = [await push(api, email=f"user{n}@example.com") for n in range(5)]
            await drain(runtime)
            events = [await event(api, i) for i in ids]
            assert [e["status"] for e in events] == ["processed"] * 5
            assert {e["messages"][0]["provider"] for e in events} == {"relay-backup"}
            await smtp_sink.wait_for(5)
            assert sorted(m.rcpt_tos[0] for m in smtp_sink.messages) == sorted(f"user{n}@example.com" for n in range(5))
    finally:
        await runtime.aclose()


async def test_the_default_provider_is_tried_again_after_the_failover_period(
    settings: Settings, smtp_sink: SmtpSink
) -> None:
    backup_sink = start_sink()
    changed = {"provider_failover_after": 3, "provider_failover_seconds": 0.5}
    runtime = Runtime.create(settings.model_copy(update=changed))
    try:
        async with await make_client(runtime) as api:
            await add(api, "relay", "smtp", {"url": smtp_sink.url}, role="default")
            await add(api, "relay-backup", "smtp", {"url": backup_sink.url}, role="backup")
            await published_template(api)
            smtp_sink.fail_next_data(3)  # 451 three times: three temporary failures in a row
            first = [await push(api, email=f"first{n}@example.com") for n in range(3)]
            await drain(runtime)
            assert {(await event(api, i))["messages"][0]["provider"] for i in first} == {"relay-backup"}
            await asyncio.sleep(0.6)
            later = await push(api, email="later@example.com")
            await drain(runtime)
            message = (await event(api, later))["messages"][0]
            assert (message["provider"], message["status"]) == ("relay", "sent")
            await smtp_sink.wait_for(1)
            await backup_sink.wait_for(3)
            assert [m.rcpt_tos for m in smtp_sink.messages] == [["later@example.com"]]
    finally:
        await runtime.aclose()
        backup_sink.stop()


async def test_a_provider_refusing_every_address_of_a_batch_quarantines_none(
    settings: Settings, smtp_sink: SmtpSink
) -> None:
    runtime = Runtime.create(settings.model_copy(update={"smtp_url": SecretStr(smtp_sink.url)}))
    try:
        async with await make_client(runtime) as api:
            await published_template(api)
            addresses = [f"user{n}@example.com" for n in range(REFUSED_BATCH)]
            for address in addresses:
                smtp_sink.reject_recipient(address)  # as a relay set up for another domain would answer
            ids = [await push(api, email=address) for address in addresses]
            worker = Worker(runtime.settings, runtime.sessionmaker, runtime.channels, runtime.outbound)
            assert await worker.deliver_one_batch() == REFUSED_BATCH
            events = [await event(api, i) for i in ids]
            assert {e["status"] for e in events} == {"pending"}
            assert "refused all 20 addresses of a batch" in events[0]["lastError"]
            assert (await api.get("/api/v1/quarantine")).json() == []

            smtp_sink.accept_recipients_again()  # the relay fixed: they all go, and one bad address alone is
            smtp_sink.reject_recipient("gone@example.com")  # quarantined as ever
            alone = await push(api, email="gone@example.com")
            await drain(runtime)
            assert {(await event(api, i))["status"] for i in ids} == {"processed"}
            assert (await event(api, alone))["status"] == "delivery_failed"
            assert [q["address"] for q in (await api.get("/api/v1/quarantine")).json()] == ["gone@example.com"]
    finally:
        await runtime.aclose()


@contextlib.asynccontextmanager
async def serving(runtime: Runtime) -> AsyncIterator[str]:
    """Envoi's API on a real port, as a provider calling back reaches it."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(runtime.settings, run_worker=False, runtime=runtime),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="off",
        )
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def test_an_sms_through_kannel_is_marked_delivered_by_its_report(settings: Settings, tmp_path: Path) -> None:
    kannel = KannelPeer(tmp_path)
    await kannel.start()
    runtime = Runtime.create(settings)
    try:
        async with serving(runtime) as base_url, await make_client(runtime) as api:
            receipt_url = f"{base_url}/receipts/kannel-eu"
            kannel_settings = {"sendsms_url": kannel.sendsms_url, "username": "envoi", "password": "secret"}
            kannel_settings |= {"receipt_url": receipt_url, "receipt_secret": "a long random string"}
            await add(api, "kannel-eu", "kannel", kannel_settings, role="default")
            await create_type(api, "login_code", sample={"code": "123456"})
            template = {
                "name": "Code",
                "eventType": "login_code",
                "channel": "sms",
                "sms": {"text": "Code {{ ctx.code }}"},
            }
            template_id = (await api.post("/api/v1/templates", json=template)).json()["id"]
            assert (await api.post(f"/api/v1/templates/{template_id}/publish")).status_code == 200
            body = {"type": "login_code", "wishedChannel": "sms", "mobilePhone": "+33612345678", "ctx": {"code": "42"}}
            event_id = await push(api, **body, email=None)
            await drain(runtime)

            async def delivered() -> dict[str, Any]:
                while (message := (await event(api, event_id))["messages"][0])["status"] != "delivered":
                    await asyncio.sleep(0.05)
                return message

            message = await asyncio.wait_for(delivered(), 10)
            assert message["provider"] == "kannel-eu" and message["providerId"]
            while not kannel.messages():  # fakesmsc says what it got a moment after Kannel reports it delivered
                await asyncio.sleep(0.05)
            assert kannel.messages() == [("+33612345678", "Code 42")]

            async with httpx.AsyncClient() as outsider:  # no signature, or someone else's: refused
                forged = await outsider.get(
                    receipt_url, params={"ref": message["providerId"], "type": "2", "sig": "0" * 32}
                )
                assert forged.status_code == 403
                unknown = await outsider.get(f"{base_url}/receipts/nobody", params={"ref": "x", "type": "1"})
                assert unknown.status_code == 404
            assert (await event(api, event_id))["messages"][0]["status"] == "delivered"
    finally:
        await runtime.aclose()
        await kannel.stop()
