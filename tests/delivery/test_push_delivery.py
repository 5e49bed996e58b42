"""Push events end to end: to the outbox by default, to APNs on 127.0.0.1 once a provider is configured through
the API (tests/push_peers.py); a dead token quarantined and its next event ignored; push falling back to email;
proofs to push seeds."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import quote

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from pydantic import SecretStr

from envoi.delivery.quarantine import add_to_quarantine
from envoi.runtime import Runtime
from envoi.settings import Settings
from tests.conftest import drain, make_client
from tests.helpers import create_type, event, push
from tests.push_peers import ApnsPeer
from tests.smtp_sink import SmtpSink, _make_certificates

TEAM_ID, KEY_ID, TOPIC = "TEAM123456", "KEY1234567", "com.example.shop"
TOKEN = "a3" * 32  # an APNs device token: 32 bytes, in hex
SUBSCRIPTION = '{"endpoint":"https://push.example.net/send/x1","keys":{"p256dh":"BNc","auth":"tBH"}}'
NOTICE = {
    "name": "Parcel push",
    "channel": "push",
    "push": {
        "title": "Parcel {{ ctx.parcel }}",
        "body": "Your parcel {{ ctx.parcel }} left today.",
        "data": {"url": "https://shop.example/parcels/{{ ctx.parcel }}"},
        "badge": "{{ ctx.unread }}",
        "sound": "default",
    },
}
EMAIL = {"from": "Shop <shop@example.com>", "subject": "Parcel {{ ctx.parcel }}", "text": "It left today."}
CTX = {"parcel": "XK-1", "unread": 3}


class Envoi(NamedTuple):
    api: httpx.AsyncClient
    runtime: Runtime


async def shipping_notice(api: httpx.AsyncClient, *, email: bool = False, **channels: Any) -> int:
    """The event type with a published push template (and an email one); returns the push template's id."""
    await create_type(api, "shipping_notice", sample=CTX, **channels)
    ids = []
    for body in [NOTICE, *([{"name": "Parcel email", "channel": "email", "email": EMAIL}] if email else [])]:
        created = await api.post("/api/v1/templates", json=body | {"eventType": "shipping_notice"})
        assert created.status_code == 201, created.text
        ids.append(int(created.json()["id"]))
        assert (await api.post(f"/api/v1/templates/{ids[-1]}/publish")).status_code == 200
    return ids[0]


async def notify(api: httpx.AsyncClient, token: str = TOKEN, **fields: Any) -> int:
    body = {"type": "shipping_notice", "wishedChannel": "push", "registrationToken": token, "platform": "ios"}
    return await push(api, **(body | {"email": None, "ctx": CTX} | fields))


async def test_a_push_event_goes_to_the_outbox_by_default(api: httpx.AsyncClient, runtime: Runtime) -> None:
    await shipping_notice(api)
    ios = await notify(api, platform=None, wishedChannel=41)  # Adobe's iOS channel says the platform
    web = await notify(api, token=SUBSCRIPTION, platform=None)  # a subscription is recognised
    await drain(runtime)
    sent = await event(api, ios)
    assert (sent["status"], sent["channel"], sent["platform"], sent["registrationToken"]) == (
        "processed", "push", "ios", TOKEN,
    )  # fmt: skip
    [message] = sent["messages"]
    assert (message["channel"], message["address"], message["status"], message["provider"]) == (
        "push", TOKEN, "sent", "outbox",
    )  # fmt: skip
    [captured] = (await api.get("/api/v1/outbox", params={"to": TOKEN})).json()
    assert (captured["channel"], captured["subject"], captured["text"]) == (
        "push", "Parcel XK-1", "Your parcel XK-1 left today.",
    )  # fmt: skip
    data = {"url": "https://shop.example/parcels/XK-1"}
    assert captured["push"] == {"platform": "ios", "data": data, "badge": 3, "sound": "default"}
    [on_the_web] = (await api.get("/api/v1/outbox", params={"to": SUBSCRIPTION})).json()
    assert on_the_web["push"]["platform"] == "web" and (await event(api, web))["status"] == "processed"


# Through APNs


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    return _make_certificates(tmp_path_factory.mktemp("push-tls"))


@pytest.fixture(scope="module")
def apns_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
async def apns_peer(
    certificates: tuple[Path, Path, Path], apns_key: ec.EllipticCurvePrivateKey
) -> AsyncIterator[ApnsPeer]:
    peer = ApnsPeer(certificates, public_key=apns_key.public_key(), team_id=TEAM_ID, key_id=KEY_ID, topic=TOPIC)
    await peer.start()
    yield peer
    await peer.stop()


@pytest.fixture
async def envoi(
    settings: Settings,
    smtp_sink: SmtpSink,
    apns_peer: ApnsPeer,
    certificates: tuple[Path, Path, Path],
    apns_key: ec.EllipticCurvePrivateKey,
) -> AsyncIterator[Envoi]:
    """Emails to the SMTP sink; iOS pushes to the APNs peer, through a provider added over the API."""
    changes = {"smtp_url": SecretStr(smtp_sink.url), "provider_files_dir": certificates[0].parent}  # the CA's
    runtime = Runtime.create(settings.model_copy(update=changes))
    async with await make_client(runtime) as client:
        key = apns_key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()
        apns = {"team_id": TEAM_ID, "key_id": KEY_ID, "private_key": key, "topic": TOPIC}
        apns |= {"url": apns_peer.url, "ca_file": str(certificates[0])}
        provider = {"name": "apple", "kind": "apns", "role": "default", "settings": apns}
        added = await client.post("/api/v1/providers", json=provider)
        assert added.status_code == 201, added.text
        yield Envoi(client, runtime)
    await runtime.aclose()


async def test_a_push_event_reaches_apns(envoi: Envoi, apns_peer: ApnsPeer) -> None:
    api, runtime = envoi
    await shipping_notice(api)
    event_id = await notify(api)
    await drain(runtime)
    [got] = apns_peer.received
    assert (got.token, got.title, got.body) == (TOKEN, "Parcel XK-1", "Your parcel XK-1 left today.")
    assert (dict(got.data), got.badge, got.sound) == ({"url": "https://shop.example/parcels/XK-1"}, 3, "default")
    sent = await event(api, event_id)
    assert sent["status"] == "processed"
    [message] = sent["messages"]
    assert (message["provider"], message["providerId"], message["status"]) == ("apple", got.id, "sent")
    assert (await api.get("/api/v1/outbox")).json() == []


async def test_an_unregistered_token_is_quarantined_and_its_next_event_ignored(
    envoi: Envoi, apns_peer: ApnsPeer
) -> None:
    api, runtime = envoi
    await shipping_notice(api)
    apns_peer.unregister(TOKEN)
    first = await notify(api)
    await drain(runtime)
    failed = await event(api, first)
    assert failed["status"] == "delivery_failed" and "Unregistered" in failed["lastError"]
    quarantine = (await api.get("/api/v1/quarantine")).json()
    assert [(q["channel"], q["address"]) for q in quarantine] == [("push", TOKEN)]
    requests = apns_peer.requests
    second = await notify(api)
    await drain(runtime)
    ignored = await event(api, second)
    assert ignored["status"] == "ignored" and "quarantined" in ignored["lastError"]
    assert apns_peer.requests == requests and ignored["messages"] == []
    # Released, the token is sent to again.
    assert (await api.delete(f"/api/v1/quarantine/push/{TOKEN}")).status_code == 204
    apns_peer.unregistered.clear()
    third = await notify(api)
    await drain(runtime)
    assert (await event(api, third))["status"] == "processed" and len(apns_peer.received) == 1


async def test_a_push_refused_for_good_falls_back_to_email(
    envoi: Envoi, apns_peer: ApnsPeer, smtp_sink: SmtpSink
) -> None:
    api, runtime = envoi
    await shipping_notice(api, email=True, defaultChannel="push", fallbackChannel="email")
    apns_peer.unregister(TOKEN)
    event_id = await push(
        api, type="shipping_notice", registrationToken=TOKEN, platform="ios", email="ann@example.com", ctx=CTX
    )
    await drain(runtime)
    [received] = await smtp_sink.wait_for(1)
    assert received.rcpt_tos == ["ann@example.com"] and received.message["Subject"] == "Parcel XK-1"
    done = await event(api, event_id)
    assert (done["status"], done["channel"]) == ("processed", "email")
    assert [(m["channel"], m["address"], m["status"]) for m in done["messages"]] == [
        ("push", TOKEN, "failed"),
        ("email", "ann@example.com", "sent"),
    ]
    reasons = [entry["reason"] or "" for entry in done["timeline"]]
    assert any("push failed for good" in r and "Unregistered" in r and "trying email" in r for r in reasons)
    assert [(q["channel"], q["address"]) for q in (await api.get("/api/v1/quarantine")).json()] == [("push", TOKEN)]


async def test_proofs_go_to_push_seeds_through_their_platforms_provider(envoi: Envoi, apns_peer: ApnsPeer) -> None:
    api, _runtime = envoi
    template_id = await shipping_notice(api)
    seeds = f"/api/v1/templates/{template_id}/seeds"
    phone = await api.post(seeds, json={"label": "My iPhone", "address": TOKEN.upper(), "platform": "ios"})
    assert phone.status_code == 201 and (phone.json()["address"], phone.json()["platform"]) == (TOKEN, "ios")
    browser = await api.post(seeds, json={"label": "My browser", "address": SUBSCRIPTION})
    assert browser.status_code == 201 and browser.json()["platform"] == "web"
    proofs = (await api.post(f"/api/v1/templates/{template_id}/proof")).json()
    assert [(p["label"], p["status"]) for p in proofs] == [("My iPhone", "sent"), ("My browser", "sent")]
    [got] = apns_peer.received  # iOS has a provider; the web has none, so its proof is in the outbox
    assert (got.token, got.title, got.body, got.badge) == (
        TOKEN,
        "[Proof] Parcel XK-1",
        "Your parcel XK-1 left today.",
        3,
    )
    [captured] = (await api.get("/api/v1/outbox")).json()
    assert (captured["to"], captured["subject"], captured["push"]["platform"]) == (
        SUBSCRIPTION, "[Proof] Parcel XK-1", "web",
    )  # fmt: skip


# The quarantine


async def test_a_quarantined_subscription_is_ignored_and_released_by_its_encoded_address(
    api: httpx.AsyncClient, runtime: Runtime
) -> None:
    await shipping_notice(api)
    async with runtime.transaction() as session:
        await add_to_quarantine(session, [("push", SUBSCRIPTION, "Web Push: subscription expired (410)")])
    ignored = await notify(api, token=SUBSCRIPTION, platform="web")
    await drain(runtime)
    assert (await event(api, ignored))["status"] == "ignored"
    assert (await api.get("/api/v1/outbox")).json() == []
    released = await api.delete(f"/api/v1/quarantine/push/{quote(SUBSCRIPTION, safe='')}")
    assert released.status_code == 204 and (await api.get("/api/v1/quarantine")).json() == []
    again = await api.delete(f"/api/v1/quarantine/push/{quote(SUBSCRIPTION, safe='')}")
    assert again.status_code == 404
