"""Faults inside a batch: bad data, lost leases, a resume racing a send. None may lose or duplicate an event."""

from __future__ import annotations

from datetime import timedelta

import httpx
from sqlalchemy import func, select

from envoi.db.base import utcnow
from envoi.delivery.claim import claim_batch
from envoi.delivery.models import Message
from envoi.delivery.pipeline import DeliveryPipeline, load_context
from envoi.events.models import EventStatusChange
from envoi.runtime import Runtime
from envoi.templates.service import resume_template
from tests.conftest import drain
from tests.helpers import event, published_template, push


async def test_a_value_that_breaks_a_filter_fails_its_event_only(api: httpx.AsyncClient, runtime: Runtime) -> None:
    await published_template(api, subject="Total {{ ctx.total | floor }}")
    poisoned = await push(api, ctx={"orderId": "A-1", "total": "1e999"})
    healthy = await push(api, ctx={"orderId": "A-2", "total": "12.5"})
    await drain(runtime)
    failed = await event(api, poisoned)
    assert failed["status"] == "delivery_failed"
    assert failed["lastError"].startswith("template error")
    assert (await event(api, healthy))["status"] == "processed"


async def _claim(runtime: Runtime, owner: str, at_offset: float = 0.0) -> list:  # type: ignore[type-arg]
    async with runtime.transaction() as session:
        claimed = await claim_batch(
            session, owner=owner, size=10, lease_seconds=30, now=utcnow() + timedelta(seconds=at_offset)
        )
        return [claimed, await load_context(session, claimed, runtime.settings)]


async def test_a_worker_that_lost_its_lease_records_nothing(api: httpx.AsyncClient, runtime: Runtime) -> None:
    await published_template(api)
    event_id = await push(api)
    pipeline = DeliveryPipeline(runtime.settings, runtime.channels, runtime.outbound)
    slow_events, slow_context = await _claim(runtime, "slow")
    await _claim(runtime, "other", at_offset=31)  # the lease ran out: another worker took the batch over
    decisions = pipeline.decide(slow_events, slow_context, utcnow())
    await pipeline.send(decisions)
    pipeline.settle(decisions, utcnow())
    async with runtime.transaction() as session:
        assert await pipeline.record(session, "slow", decisions, slow_context, utcnow()) == 0
        assert await session.scalar(select(func.count()).select_from(Message)) == 0
        assert await session.scalar(select(func.count()).select_from(EventStatusChange)) == 0
    stored = await event(api, event_id)
    assert stored["status"] == "processing"
    assert stored["errorCount"] == 1  # the takeover counts as an attempt


async def test_lease_that_keeps_running_out_ends_too_old(api: httpx.AsyncClient, runtime: Runtime) -> None:
    await published_template(api)
    event_id = await push(api)
    for attempt in range(runtime.settings.retry_max_attempts + 1):
        await _claim(runtime, f"crashing-{attempt}", at_offset=31 * attempt)
    async with runtime.transaction() as session:  # a last claim far in the future: the one that gives up
        events = await claim_batch(session, owner="final", size=10, lease_seconds=30, now=utcnow() + timedelta(hours=1))
        context = await load_context(session, events, runtime.settings)
    pipeline = DeliveryPipeline(runtime.settings, runtime.channels, runtime.outbound)
    decisions = pipeline.decide(events, context, utcnow())
    async with runtime.transaction() as session:
        await pipeline.record(session, "final", decisions, context, utcnow())
    stored = await event(api, event_id)
    assert stored["status"] == "too_old"
    assert "stopped before recording" in stored["lastError"]


async def test_resume_during_a_send_does_not_strand_paused_events(api: httpx.AsyncClient, runtime: Runtime) -> None:
    template = await published_template(api)
    await api.post(f"/api/v1/templates/{template['id']}/pause")
    event_id = await push(api)
    pipeline = DeliveryPipeline(runtime.settings, runtime.channels, runtime.outbound)
    events, context = await _claim(runtime, "w")
    decisions = pipeline.decide(events, context, utcnow())
    assert decisions[0].status.label == "paused"
    async with runtime.transaction() as session:  # resumed while the batch is in flight
        _template, released = await resume_template(session, template["id"], actor="test")
        assert released == 0
    async with runtime.transaction() as session:
        await pipeline.record(session, "w", decisions, context, utcnow())
    assert (await event(api, event_id))["status"] == "pending"
    await drain(runtime)
    assert (await event(api, event_id))["status"] == "processed"
