"""The queue itself: real-time before batch, leases taken over after a crash, the outbox by default."""

from __future__ import annotations

from datetime import timedelta

import httpx

from envoi.db.base import utcnow
from envoi.delivery.claim import claim_batch
from envoi.runtime import Runtime
from tests.conftest import drain
from tests.helpers import event, published_template, push


async def test_realtime_events_are_claimed_before_batch_events(api: httpx.AsyncClient, runtime: Runtime) -> None:
    await published_template(api)
    batch_ids = [await push(api, mode="batch") for _ in range(3)]
    realtime_ids = [await push(api) for _ in range(2)]
    async with runtime.transaction() as session:
        claimed = await claim_batch(session, owner="w1", size=2, lease_seconds=60, now=utcnow())
    assert [e.id for e in claimed] == realtime_ids
    async with runtime.transaction() as session:
        rest = await claim_batch(session, owner="w1", size=10, lease_seconds=60, now=utcnow())
    assert [e.id for e in rest] == batch_ids


async def test_a_dead_workers_batch_is_taken_over_when_its_lease_ends(api: httpx.AsyncClient, runtime: Runtime) -> None:
    await published_template(api)
    event_id = await push(api)
    now = utcnow()
    async with runtime.transaction() as session:
        (claimed,) = await claim_batch(session, owner="dead", size=10, lease_seconds=30, now=now)
    assert claimed.id == event_id
    assert (await event(api, event_id))["status"] == "processing"
    async with runtime.transaction() as session:  # while the lease holds, nobody else gets it
        assert (
            await claim_batch(session, owner="other", size=10, lease_seconds=30, now=now + timedelta(seconds=29)) == []
        )
    async with runtime.transaction() as session:
        (again,) = await claim_batch(session, owner="other", size=10, lease_seconds=30, now=now + timedelta(seconds=31))
    assert again.id == event_id


async def test_without_smtp_emails_go_to_the_outbox(api: httpx.AsyncClient, runtime: Runtime) -> None:
    await published_template(api)
    event_id = await push(api, email="grace@example.com", ctx={"orderId": "B-7", "firstName": "Grace"})
    await drain(runtime)
    stored = await event(api, event_id)
    assert stored["status"] == "processed"
    outbox = (await api.get("/api/v1/outbox", params={"to": "grace@example.com"})).json()
    (mail,) = outbox
    assert mail["subject"] == "Order B-7 confirmed"
    assert mail["html"] == "<p>Hello Grace</p>"
    assert mail["from"] == "Shop <shop@example.com>"
    assert stored["messages"][0]["providerId"] == f"outbox-{mail['id']}"
    assert (await api.get(f"/api/v1/outbox/{mail['id']}")).json()["to"] == "grace@example.com"
