"""Recording a batch: paused templates checked again, the events' new status where the lease is still ours, each
final status announced to the webhooks that want it, in the batch's transaction."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update
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


async def record_owned(
    session: AsyncSession, owner: str, outcomes: list[tuple[ClaimedEvent, dict[str, Any]]]
) -> set[int]:
    """Give each event its new values, if we still hold its lease; returns the ids of those we did (a batch taken
    over by another worker is theirs to record). One UPDATE per set of identical values, which in a batch are
    nearly all alike ("processed", same template): two or three statements, where one per event with a locking
    SELECT before them cost PostgreSQL more CPU than anything else in the record. Their times name the
    partitions to read on PostgreSQL."""
    alike: dict[tuple[tuple[str, Any], ...], list[ClaimedEvent]] = {}
    for event, values in outcomes:
        alike.setdefault(tuple(sorted(values.items())), []).append(event)
    owned: set[int] = set()
    for same, events in alike.items():
        recorded = await session.execute(
            update(Event)
            .where(
                Event.id.in_([e.id for e in events]),
                Event.created_at.in_({e.created_at for e in events}),
                Event.lease_owner == owner,
                Event.status == EventStatus.PROCESSING,
            )
            .values(dict(same))
            .returning(Event.id)
            .execution_options(synchronize_session=False)
        )
        owned.update(recorded.scalars())
    return owned


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
