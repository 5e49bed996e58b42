"""Recording a batch: the lease still ours, paused templates checked again, each final status announced to
the webhooks that want it, in the batch's transaction."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from envoi.events.models import Event, EventStatus
from envoi.templates.models import Template, TemplateState
from envoi.webhooks.outbox import EVENT_CHANGES, StatusChange

if TYPE_CHECKING:
    from envoi.delivery.claim import ClaimedEvent
    from envoi.delivery.pipeline import Decision


def announced(d: Decision, now: datetime) -> StatusChange | None:
    """An event's final status, for the webhooks that want it (in the transaction that records it)."""
    change = EVENT_CHANGES.get(d.status.label)
    if change is None or d.fallback:
        return None
    details = {"status": d.status.label, "channel": d.event.channel, "reason": d.reason}
    return StatusChange(change, d.event.id, d.event.type, now, details)


async def still_ours(session: AsyncSession, owner: str, events: list[ClaimedEvent]) -> set[int]:
    """The events whose lease we still hold, locked until the batch commits; a batch taken over by another
    worker is theirs to record. Locked, not updated: the batch's own update clears the lease, which spares each
    event a row version (PostgreSQL's CPU for this step fell from 0.03 to 0.02 ms per message). Their times
    name the partitions to read on PostgreSQL."""
    rows = await session.execute(
        select(Event.id)
        .where(
            Event.id.in_([e.id for e in events]),
            Event.created_at.in_({e.created_at for e in events}),
            Event.lease_owner == owner,
            Event.status == EventStatus.PROCESSING,
        )
        .with_for_update()
    )
    return set(rows.scalars())


async def recheck_paused(session: AsyncSession, decisions: list[Decision], now: datetime) -> None:
    """A template resumed while the batch was being sent must not leave its events paused for ever."""
    paused = {d.route.template_id for d in decisions if d.status == EventStatus.PAUSED and d.route}
    if not paused:
        return
    states: dict[int | None, str] = dict(
        (
            await session.execute(
                select(Template.id, Template.state).where(Template.id.in_(paused)).with_for_update(read=True)
            )
        ).all()
    )
    for d in decisions:
        if d.status == EventStatus.PAUSED and d.route and states.get(d.route.template_id) != TemplateState.PAUSED:
            d.status, d.next_attempt_at = EventStatus.PENDING, now
            d.reason = "its template was resumed while the batch was in flight"
