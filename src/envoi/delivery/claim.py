"""Claiming work from the queue: ``FOR UPDATE SKIP LOCKED`` and a lease, so no two workers send one event
and a dead worker's batch is taken over when its lease ends."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import CompoundSelect, Select, Update, case, func, literal, select, text, tuple_, union_all, update
from sqlalchemy.ext.asyncio import AsyncSession

from envoi.db.base import UTCDateTime
from envoi.events.models import Event, EventMode, EventStatus

# Written out, not bound: the planner must see a partial index's own predicate to use it (SQLite wants it word
# for word: CLAIMABLE for ix_events_claim, _LEASED for ix_events_leases).
CLAIMABLE = text(f"events.status IN ({EventStatus.PENDING.value}, {EventStatus.PROCESSING.value})")
PENDING = text(f"events.status = {EventStatus.PENDING.value}")
_LEASED = text(f"events.status = {EventStatus.PROCESSING.value}")


@dataclass(frozen=True, slots=True)
class ClaimedEvent:
    id: int
    type: str
    channel: str
    email: str | None
    mobile_phone: str | None
    registration_token: str | None
    platform: str | None
    external_id: str | None
    origin: str | None
    language: str | None
    ctx: dict[str, Any]
    expires_at: datetime | None
    error_count: int
    last_error: str | None
    created_at: datetime
    profile_id: int | None = None
    delivery_id: int | None = None  # marketing: the email delivery, and its variant
    variant: str | None = None


_COLUMNS = (
    Event.id,
    Event.type,
    Event.channel,
    Event.email,
    Event.mobile_phone,
    Event.registration_token,
    Event.platform,
    Event.external_id,
    Event.origin,
    Event.language,
    Event.ctx,
    Event.expires_at,
    Event.error_count,
    Event.last_error,
    Event.created_at,
    Event.profile_id,
    Event.delivery_id,
    Event.variant,
)


async def claim_batch(
    session: AsyncSession, *, owner: str, size: int, lease_seconds: float, now: datetime
) -> list[ClaimedEvent]:
    """Take up to ``size`` due events: a dead worker's first (PROCESSING, its lease ran out: the lease end is
    stored in ``next_attempt_at``), then new and retried ones, real-time before batch before marketing."""
    rows = (await session.execute(claim_statement(owner=owner, size=size, lease_seconds=lease_seconds, now=now))).all()
    return sorted((ClaimedEvent(*row) for row in rows), key=lambda e: e.id)


def claim_order(size: int, now: datetime) -> CompoundSelect[int, datetime]:
    """The events to claim (id, created_at), in priority order. One range of an index per part, each stopping at
    ``size``, and the parts read one after the other until ``size`` are found: a claim reads about ``size`` index
    entries however many events wait, and events scheduled for later in one mode never hold up the due ones of
    the next. With created_at, each claimed event is found in its own day's partition on PostgreSQL; by id
    alone, every partition would be searched for each one."""

    def first(query: Select[int, datetime]) -> Select[int, datetime]:
        part = query.order_by(Event.next_attempt_at).limit(size).with_for_update(skip_locked=True).subquery()
        return select(part.c.id, part.c.created_at)

    keys = (Event.id, Event.created_at)
    expired = first(select(*keys).where(_LEASED, Event.next_attempt_at <= now))
    pending = [
        first(select(*keys).where(CLAIMABLE, PENDING, Event.mode == mode, Event.next_attempt_at <= now))
        for mode in EventMode
    ]
    return union_all(expired, *pending).limit(size)


def claim_statement(*, owner: str, size: int, lease_seconds: float, now: datetime) -> Update:
    """The claim, one statement: its plan is what tests/db/test_claim_scale.py reads."""
    return (
        update(Event)
        .where(tuple_(Event.id, Event.created_at).in_(claim_order(size, now)))
        .values(
            status=EventStatus.PROCESSING,
            # A lease that ran out means a worker died or failed on this batch: it counts as an attempt,
            # so a batch that crashes every worker ends too_old instead of being retried for ever.
            error_count=Event.error_count + case((Event.status == EventStatus.PROCESSING, 1), else_=0),
            last_error=case(
                (Event.status == EventStatus.PROCESSING, "the worker handling it stopped before recording"),
                else_=Event.last_error,
            ),
            lease_owner=owner,
            claimed_at=func.coalesce(Event.claimed_at, literal(now, UTCDateTime())),  # the first claim ends queue time
            next_attempt_at=now + timedelta(seconds=lease_seconds),
            updated_at=now,
        )
        .returning(*_COLUMNS)
        .execution_options(synchronize_session=False)
    )
