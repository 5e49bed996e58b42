"""Writing webhook calls into the outbox, in the caller's transaction: a status change and the call that
announces it commit together or not at all, so none is lost and none announces what did not happen."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from envoi.events.models import Event
from envoi.webhooks.models import CallStatus, Change, Webhook, WebhookCall

# What an event's final status is announced as.
EVENT_CHANGES = {
    "processed": Change.EVENT_PROCESSED,
    "delivery_failed": Change.EVENT_FAILED,
    "ignored": Change.EVENT_IGNORED,
    "routing_failed": Change.EVENT_ROUTING_FAILED,
    "too_old": Change.EVENT_TOO_OLD,
}


@dataclass(frozen=True, slots=True)
class StatusChange:
    change: Change
    event_id: int
    event_type: str
    at: datetime
    details: dict[str, Any]  # status, reason, channel, message id...


async def announce(session: AsyncSession, changes: Sequence[StatusChange]) -> int:
    """One call per change per active subscription that wants it; returns how many were written."""
    if not changes:
        return 0
    wanted = {c.change.value for c in changes}
    hooks = [
        (hook_id, set(kinds), set(types) if types else None)
        for hook_id, kinds, types in await session.execute(
            select(Webhook.id, Webhook.changes, Webhook.event_types).where(Webhook.active.is_(True))
        )
        if wanted & set(kinds)
    ]
    rows = [
        {
            "webhook_id": hook_id,
            "change": c.change.value,
            "body": {
                "change": c.change.value,
                "at": c.at.isoformat(),
                "event": {"id": c.event_id, "type": c.event_type},
                **c.details,
            },
            "status": CallStatus.PENDING,
            "attempts": 0,
            "next_attempt_at": c.at,
            "created_at": c.at,
        }
        for c in changes
        for hook_id, kinds, types in hooks
        if c.change.value in kinds and (types is None or c.event_type in types)
    ]
    if rows:
        await session.execute(insert(WebhookCall), rows)
    return len(rows)


async def announce_message(
    session: AsyncSession, change: Change, *, event_id: int, message: dict[str, Any], now: datetime
) -> int:
    """A message's change (delivered, opened, clicked), announced with its event's type."""
    event_type = await session.scalar(select(Event.type).where(Event.id == event_id))
    return await announce(session, [StatusChange(change, event_id, event_type or "", now, {"message": message})])
