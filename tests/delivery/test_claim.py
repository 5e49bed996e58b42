"""Which events a claim takes first: a dead worker's, whose lease ran out, before the queue behind them."""

from __future__ import annotations

from datetime import timedelta

import httpx

from envoi.db.base import utcnow
from envoi.delivery.claim import claim_batch
from envoi.runtime import Runtime
from tests.helpers import event, published_template, push


async def test_a_dead_workers_events_are_claimed_before_the_queue(api: httpx.AsyncClient, runtime: Runtime) -> None:
    await published_template(api)
    abandoned = [await push(api, mode="batch") for _ in range(3)]
    now = utcnow()
    async with runtime.transaction() as session:  # a worker takes them, then dies with a 30 seconds lease
        assert len(await claim_batch(session, owner="dead", size=10, lease_seconds=30, now=now)) == 3
    # Pushed after, real-time: due before the lease ends, and in the mode that is claimed first.
    queued = [await push(api) for _ in range(5)]

    later = now + timedelta(seconds=31)
    async with runtime.transaction() as session:
        taken = await claim_batch(session, owner="alive", size=3, lease_seconds=30, now=later)
    assert [e.id for e in taken] == abandoned
    assert [e.error_count for e in taken] == [1, 1, 1]  # the crash counts as an attempt
    assert [(await event(api, i))["status"] for i in queued] == ["pending"] * 5

    async with runtime.transaction() as session:  # then the queue, in its order
        rest = await claim_batch(session, owner="alive", size=10, lease_seconds=30, now=later)
    assert [e.id for e in rest] == queued


async def test_a_claim_fills_up_with_the_queue_after_the_expired_leases(
    api: httpx.AsyncClient, runtime: Runtime
) -> None:
    await published_template(api)
    abandoned = await push(api)
    now = utcnow()
    async with runtime.transaction() as session:
        await claim_batch(session, owner="dead", size=10, lease_seconds=30, now=now)
    queued = [await push(api) for _ in range(4)]
    async with runtime.transaction() as session:
        taken = await claim_batch(session, owner="alive", size=3, lease_seconds=30, now=now + timedelta(seconds=31))
    assert sorted(e.id for e in taken) == [abandoned, *queued[:2]]
    async with runtime.transaction() as session:  # the live leases are nobody else's to take
        rest = await claim_batch(session, owner="third", size=10, lease_seconds=30, now=now + timedelta(seconds=32))
    assert [e.id for e in rest] == queued[2:]
