"""Status webhooks against a real receiver on 127.0.0.1: a correctly signed call for each status change asked
for, retried while the receiver is down and delivered once it is back, a subscription disabled (and its owner
told) when calls keep failing, private addresses refused unless allowed."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from envoi.access.groups import add_member
from envoi.access.operators import create_operator
from envoi.access.service import create_api_key
from envoi.runtime import Runtime
from envoi.settings import Settings
from envoi.webhooks.sender import WebhookSender
from tests.conftest import drain
from tests.helpers import create_type, published_template, push


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    port: int
    status: int = 200
    calls: list[Received] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/envoi"

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.calls.append(Received({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        assert self.server is not None
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    peer = Receiver(0)
    peer.start()
    yield peer
    peer.stop()


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "webhook_allow_private_networks": True,
            "webhook_retry_base_seconds": 0.01,
            "webhook_retry_max_seconds": 0.05,
        }
    )


def verified(call: Received, secret: str) -> dict[str, Any]:
    """The body, after checking the signature as a receiver would."""
    parts = dict(item.split("=", 1) for item in call.headers["envoi-signature"].split(","))
    expected = hmac.new(secret.encode(), f"{parts['t']}.".encode() + call.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(parts["v1"], expected), "bad signature"
    return dict(json.loads(call.body))


async def _subscribe(api: httpx.AsyncClient, url: str, changes: list[str], **extra: Any) -> dict[str, Any]:
    created = await api.post("/api/v1/webhooks", json={"url": url, "changes": changes, **extra})
    assert created.status_code == 201, created.text
    return dict(created.json())


async def _send_until(runtime: Runtime, done: Any, rounds: int = 200, **settings: Any) -> None:
    """Run the sender (its settings changed by ``settings``) until ``done()``, or fail."""
    sender = WebhookSender(runtime.settings.model_copy(update=settings), runtime.sessionmaker)
    try:
        for _ in range(rounds):
            await sender.send_due()
            if done():
                return
            await asyncio.sleep(0.02)
        raise AssertionError("the calls were not all made")
    finally:
        await sender.pool.aclose()


async def test_each_change_asked_for_is_posted_signed(
    smtp_runtime: Runtime, smtp_api: httpx.AsyncClient, receiver: Receiver
) -> None:
    await published_template(smtp_api)
    await create_type(smtp_api, "no_template")
    hook = await _subscribe(smtp_api, receiver.url, ["event.processed", "event.routing_failed"])
    assert hook["secret"].startswith("whsec_") and hook["active"] is True
    assert (await smtp_api.get(f"/api/v1/webhooks/{hook['id']}")).json()["secret"] is None  # shown once
    other = await _subscribe(smtp_api, receiver.url, ["event.processed"], eventTypes=["something_else"])
    processed = await push(smtp_api)
    failed = await push(smtp_api, type="no_template")
    await drain(smtp_runtime)
    await _send_until(smtp_runtime, lambda: len(receiver.calls) >= 2)

    bodies = {b["event"]["id"]: b for b in (verified(c, hook["secret"]) for c in receiver.calls)}
    assert set(bodies) == {processed, failed} and len(receiver.calls) == 2  # none for the filtered subscription
    assert bodies[processed]["change"] == "event.processed" and bodies[processed]["status"] == "processed"
    assert bodies[failed]["change"] == "event.routing_failed"
    assert "no published email template" in bodies[failed]["reason"]
    assert {c.headers["envoi-webhook-id"] for c in receiver.calls} == {str(hook["id"])}
    attempts = (await smtp_api.get(f"/api/v1/webhooks/{hook['id']}/attempts")).json()
    assert sorted(a["statusCode"] for a in attempts) == [200, 200] and all(a["latencyMs"] >= 0 for a in attempts)
    assert (await smtp_api.get(f"/api/v1/webhooks/{other['id']}/attempts")).json() == []


async def test_a_receiver_that_was_down_gets_the_call_when_it_is_back(
    smtp_runtime: Runtime, smtp_api: httpx.AsyncClient, receiver: Receiver
) -> None:
    await published_template(smtp_api)
    hook = await _subscribe(smtp_api, receiver.url, ["event.processed"])
    receiver.stop()  # down: connections are refused
    event_id = await push(smtp_api)
    await drain(smtp_runtime)
    sender = WebhookSender(smtp_runtime.settings, smtp_runtime.sessionmaker)
    for _ in range(3):
        await sender.send_due()
        await asyncio.sleep(0.06)
    await sender.pool.aclose()
    down = (await smtp_api.get(f"/api/v1/webhooks/{hook['id']}/attempts")).json()
    assert len(down) >= 2 and {a["statusCode"] for a in down} == {None}
    assert "ConnectError" in down[0]["response"]

    receiver.start()  # back, on the same port
    await _send_until(smtp_runtime, lambda: len(receiver.calls) == 1)
    assert verified(receiver.calls[0], hook["secret"])["event"]["id"] == event_id
    attempts = (await smtp_api.get(f"/api/v1/webhooks/{hook['id']}/attempts")).json()
    assert attempts[0]["statusCode"] == 200 and len({a["callId"] for a in attempts}) == 1  # one call, retried
    assert receiver.calls[0].headers["envoi-call-id"] == str(attempts[0]["callId"])


async def test_calls_failing_for_the_whole_period_disable_the_webhook_and_tell_its_owner(
    smtp_runtime: Runtime, smtp_api: httpx.AsyncClient, receiver: Receiver
) -> None:
    receiver.status = 500
    async with smtp_runtime.transaction() as session:
        owner = await create_operator(session, email="integrator@example.com", name="Integrator", password="x" * 12)
        await add_member(session, "delivery_supervisors", owner.id)
        _key, key = await create_api_key(session, "integrator", operator_id=owner.id)
    as_owner = {"Authorization": f"Bearer {key}"}
    await published_template(smtp_api)
    created = await smtp_api.post(
        "/api/v1/webhooks", json={"url": receiver.url, "changes": ["event.processed"]}, headers=as_owner
    )
    assert created.status_code == 201, created.text
    hook = created.json()
    await push(smtp_api)
    await drain(smtp_runtime)

    async def disabled() -> bool:
        return not (await smtp_api.get(f"/api/v1/webhooks/{hook['id']}")).json()["active"]

    for _ in range(100):  # the 24 hours of retries, shortened to 0.2 s
        await _send_until(smtp_runtime, lambda: True, webhook_retry_hours=0.2 / 3600)
        if await disabled():
            break
        await asyncio.sleep(0.02)
    state = (await smtp_api.get(f"/api/v1/webhooks/{hook['id']}")).json()
    assert state["active"] is False and "500" in state["disabledReason"], state
    assert len(receiver.calls) >= 2  # it was retried before giving up
    told = (await smtp_api.get("/api/v1/notifications", headers=as_owner)).json()["items"]
    assert [n["title"] for n in told] == [f"Webhook {hook['id']} was disabled"]
    assert (await smtp_api.post(f"/api/v1/webhooks/{hook['id']}/enable")).json()["active"] is True


async def test_private_addresses_are_refused_unless_allowed(
    smtp_runtime: Runtime, smtp_api: httpx.AsyncClient, receiver: Receiver
) -> None:
    await published_template(smtp_api)
    hook = await _subscribe(smtp_api, receiver.url, ["event.processed"])
    await push(smtp_api)
    await drain(smtp_runtime)
    strict = smtp_runtime.settings.model_copy(update={"webhook_allow_private_networks": False})
    sender = WebhookSender(strict, smtp_runtime.sessionmaker)
    assert await sender.send_due() == 1
    await sender.pool.aclose()
    [attempt] = (await smtp_api.get(f"/api/v1/webhooks/{hook['id']}/attempts")).json()
    assert attempt["statusCode"] is None and "not a public address" in attempt["response"]
    assert receiver.calls == []
    bad = await smtp_api.post("/api/v1/webhooks", json={"url": "ftp://x", "changes": ["event.processed"]})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "url"
    unknown = await smtp_api.post("/api/v1/webhooks", json={"url": receiver.url, "changes": ["event.exploded"]})
    assert unknown.status_code == 422 and unknown.json()["error"]["field"].startswith("changes")
