"""The home page's numbers: events received per minute, the queue by status, and messages sent and failed in
the last hour per channel. Each is one grouped query that an index bounds."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from envoi.db.base import utcnow
from envoi.delivery.models import ACCEPTED, Message, MessageStatus
from envoi.events.models import Event, EventStatus

MINUTES = 60
# Messages have no index on time: their scan is bounded to the events of the last day (retries end within
# hours), then filtered by when each message was sent or failed.
_MESSAGES_HORIZON = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class ChannelCounts:
    channel: str
    sent: int
    failed: int


@dataclass(frozen=True, slots=True)
class Overview:
    per_minute: list[tuple[datetime, int]]  # the last MINUTES minutes, oldest first, each with its count
    queue: list[tuple[str, int]]  # (state, events): waiting, scheduled, retrying, processing, paused
    channels: list[ChannelCounts]
    now: datetime

    @property
    def events_last_hour(self) -> int:
        return sum(count for _minute, count in self.per_minute)


def _minute_bucket(session: AsyncSession) -> Any:
    if session.get_bind().dialect.name == "postgresql":
        return func.date_trunc("minute", Event.created_at)
    return func.strftime("%Y-%m-%d %H:%M", Event.created_at)  # SQLite keeps UTC as naive text


def _as_minute(value: datetime | str) -> datetime:
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return (moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)).replace(
        second=0, microsecond=0
    )


async def events_per_minute(session: AsyncSession, now: datetime) -> list[tuple[datetime, int]]:
    end = now.replace(second=0, microsecond=0)
    start = end - timedelta(minutes=MINUTES - 1)
    bucket = _minute_bucket(session)
    rows = await session.execute(select(bucket, func.count()).where(Event.created_at >= start).group_by(bucket))
    counts: dict[datetime, int] = {}
    for minute, count in rows:
        counts[_as_minute(minute)] = counts.get(_as_minute(minute), 0) + int(count)
    return [(start + timedelta(minutes=i), counts.get(start + timedelta(minutes=i), 0)) for i in range(MINUTES)]


async def queue_depth(session: AsyncSession, now: datetime) -> list[tuple[str, int]]:
    """The events still to send, by what they wait for (the claim and paused indexes hold exactly these)."""
    state = case(
        (Event.status == EventStatus.PROCESSING, "processing"),
        (Event.error_count > 0, "retrying"),
        (Event.next_attempt_at > now, "scheduled"),
        else_="waiting",
    )
    rows = await session.execute(
        select(state, func.count())
        .where(Event.status.in_((EventStatus.PENDING, EventStatus.PROCESSING)))
        .group_by(state)
    )
    counts = {str(name): int(count) for name, count in rows}
    counts["paused"] = int(await session.scalar(select(func.count()).where(Event.status == EventStatus.PAUSED)) or 0)
    return [(name, counts.get(name, 0)) for name in ("waiting", "scheduled", "retrying", "processing", "paused")]


async def messages_last_hour(session: AsyncSession, now: datetime) -> list[ChannelCounts]:
    since = now - timedelta(hours=1)
    first_event = await session.scalar(select(func.min(Event.id)).where(Event.created_at >= now - _MESSAGES_HORIZON))
    found = {channel: ChannelCounts(channel, 0, 0) for channel in ("email", "sms", "push")}
    if first_event is not None:
        sent = func.sum(case((Message.status.in_(ACCEPTED) & (Message.sent_at >= since), 1), else_=0))
        failed = func.sum(case(((Message.status == MessageStatus.FAILED) & (Message.updated_at >= since), 1), else_=0))
        rows = await session.execute(
            select(Message.channel, sent, failed).where(Message.event_id >= first_event).group_by(Message.channel)
        )
        for channel, sent_count, failed_count in rows:
            found[channel] = ChannelCounts(channel, int(sent_count or 0), int(failed_count or 0))
    return list(found.values())


async def overview(session: AsyncSession) -> Overview:
    now = utcnow()
    return Overview(
        per_minute=await events_per_minute(session, now),
        queue=await queue_depth(session, now),
        channels=await messages_last_hour(session, now),
        now=now,
    )
