"""Envoi's own upkeep, run by the technical workflows: purge, lease recovery, hourly statistics."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pydantic import Field
from sqlalchemy import Connection, delete, func, select, text, update
from sqlalchemy.exc import OperationalError

from envoi.bounces.models import Bounce
from envoi.channels.outbox import OutboxMessage
from envoi.db.partitions import Partition, drop_day, ensure_partitions, partitioned, partitions
from envoi.delivery.models import Message
from envoi.events.models import UNENDED, Event, EventStatus, EventStatusChange, IdempotencyKey
from envoi.events.rate_buckets import RateBuckets
from envoi.notifications.models import Notification
from envoi.reports.models import QueueSample
from envoi.tracking.models import TrackingHit
from envoi.webhooks.models import CallStatus, WebhookAttempt, WebhookCall
from envoi.webhooks.service import KEPT as WEBHOOK_ATTEMPTS_KEPT
from envoi.workflows.activities.base import Activity, ActivitySettings, Done, RunContext
from envoi.workflows.models import HourlyStatistic, WorkflowRun

_CHUNK = 1000


class PurgeSettings(ActivitySettings):
    pass


class PurgeActivity(Activity[PurgeSettings]):
    kind = "purge"
    settings_model = PurgeSettings
    description = (
        "Deletes ended events (with their messages and timeline: on PostgreSQL, whole days at a time, and it makes "
        "the coming days' partitions), captured outbox messages, queue depth samples, "
        "bounce reports, workflow runs and notifications older than the retention settings (ENVOI_RETENTION_*), "
        "webhook calls and attempts older than 7 days, and the rate limits' buckets that have filled up again."
    )

    async def run(self, settings: PurgeSettings, given: dict[str, Any] | None, context: RunContext) -> Done:
        session, retention = context.session, context.settings
        before = context.now - timedelta(days=retention.retention_events_days)
        # PostgreSQL: whole days go at the end, in one go: dropping a partition locks its table until the commit.
        days = await session.run_sync(lambda s: _ended_days(s.connection(), before))
        deleted = messages = 0
        while True:  # in chunks: one huge DELETE would hold its locks (and SQLite's only lock) for long
            ended = (
                select(Event.id)
                # Received and ended before: an event scheduled far ahead is kept a full period after it ended.
                .where(
                    Event.created_at < before,
                    Event.updated_at < before,
                    Event.status.not_in([int(s) for s in UNENDED]),
                )
                .limit(_CHUNK)
            )
            if days:
                ended = ended.where(Event.created_at >= days[-1].end)
            ids = list(await session.scalars(ended))
            if not ids:
                break
            # What foreign keys would cascade to on SQLite, and do not on PostgreSQL (envoi.db.partitions).
            hit_messages = select(Message.id).where(Message.event_id.in_(ids))
            await session.execute(delete(TrackingHit).where(TrackingHit.message_id.in_(hit_messages)))
            messages += await _deleted(session, delete(Message).where(Message.event_id.in_(ids)))
            await session.execute(delete(EventStatusChange).where(EventStatusChange.event_id.in_(ids)))
            await session.execute(delete(IdempotencyKey).where(IdempotencyKey.event_id.in_(ids)))
            await session.execute(delete(Event).where(Event.id.in_(ids), Event.created_at < before))
            deleted += len(ids)
        outbox = await _deleted(session, delete(OutboxMessage).where(OutboxMessage.created_at < before))
        # Queue depth samples and bounce reports are kept as long as the events they are about.
        await session.execute(delete(QueueSample).where(QueueSample.at < before))
        await session.execute(delete(Bounce).where(Bounce.received_at < before))
        runs_before = context.now - timedelta(days=retention.retention_workflow_runs_days)
        runs = await _deleted(
            session, delete(WorkflowRun).where(WorkflowRun.ended_at < runs_before, WorkflowRun.id != context.run_id)
        )
        notices_before = context.now - timedelta(days=retention.retention_notifications_days)
        notices = await _deleted(session, delete(Notification).where(Notification.created_at < notices_before))
        await session.execute(RateBuckets.of(retention).stale())  # a full bucket is as good as none
        week = context.now - WEBHOOK_ATTEMPTS_KEPT
        await session.execute(delete(WebhookAttempt).where(WebhookAttempt.at < week))
        await session.execute(
            delete(WebhookCall).where(WebhookCall.created_at < week, WebhookCall.status != CallStatus.PENDING)
        )
        made = await session.run_sync(lambda s: ensure_partitions(s.connection(), context.now.date()))
        if made:
            context.log(f"made the partitions {', '.join(made)}")
        dropped, events = await session.run_sync(lambda s: _drop_days(s.connection(), days, before))
        if dropped:
            context.log(f"dropped {dropped} days of partitions: {events} ended events, their messages and timeline")
        context.log(
            f"deleted {deleted} ended events older than {retention.retention_events_days:g} days with their "
            f"{messages} messages, {outbox} outbox messages, {runs} workflow runs older than "
            f"{retention.retention_workflow_runs_days:g} days, {notices} notifications older than "
            f"{retention.retention_notifications_days:g} days"
        )
        return Done(count=events + deleted)


def _wanted(connection: Connection, day: Partition, before: datetime) -> bool:
    """Whether the day holds an event still waiting, or ended after ``before``."""
    waiting = ", ".join(str(int(s)) for s in UNENDED)
    found = connection.execute(
        text(f"SELECT 1 FROM {day.name} WHERE status IN ({waiting}) OR updated_at >= :before LIMIT 1"),  # noqa: S608
        {"before": before},
    )
    return found.first() is not None


def _ended_days(connection: Connection, before: datetime) -> list[Partition]:
    """PostgreSQL: the days that can go whole, oldest first: past ``before``, up to the first day holding a wanted
    event (whose messages and timeline may be in any later day)."""
    if not partitioned(connection):
        return []
    days = []
    for day in partitions(connection, "events"):
        if day.end > before or _wanted(connection, day, before):
            break
        days.append(day)
    return days


def _drop_days(connection: Connection, days: list[Partition], before: datetime) -> tuple[int, int]:
    """Drop the days found by _ended_days; returns how many, and their events. Each is checked again once locked
    (an operator may have retried one of its events since), and a lock not had within 5 s (queries on the table
    run long) leaves the day to the next purge."""
    if not days:
        return 0, 0
    timeout = connection.execute(text("SELECT current_setting('lock_timeout')")).scalar_one()
    connection.execute(text("SELECT set_config('lock_timeout', '5s', true)"))
    dropped = events = 0
    try:
        for day in days:
            try:
                with connection.begin_nested():
                    connection.execute(text(f"LOCK TABLE {day.name} IN ACCESS EXCLUSIVE MODE"))
                    if _wanted(connection, day, before):
                        break
                    count = connection.execute(text(f"SELECT count(*) FROM {day.name}")).scalar_one()  # noqa: S608
                    drop_day(connection, day)
            except OperationalError:
                break
            dropped, events = dropped + 1, events + count
    finally:
        connection.execute(text("SELECT set_config('lock_timeout', :t, true)"), {"t": timeout})
    return dropped, events


async def _deleted(session: Any, statement: Any) -> int:
    result = await session.execute(statement.execution_options(synchronize_session=False))
    return int(result.rowcount or 0)


class RecoverLeasesSettings(ActivitySettings):
    pass


class RecoverLeasesActivity(Activity[RecoverLeasesSettings]):
    kind = "recover_leases"
    settings_model = RecoverLeasesSettings
    description = (
        "Returns events whose worker died mid-batch (lease ended) to the queue, counted as a failed attempt, so "
        "that no event shows 'processing' for longer than a lease."
    )

    async def run(self, settings: RecoverLeasesSettings, given: dict[str, Any] | None, context: RunContext) -> Done:
        result = await context.session.execute(
            update(Event)
            .where(Event.status == EventStatus.PROCESSING, Event.next_attempt_at < context.now)
            .values(
                status=EventStatus.PENDING,
                lease_owner=None,
                error_count=Event.error_count + 1,
                last_error="the worker handling it stopped before recording",
                # Back at its place in the queue (when it was first taken), not behind everything queued since:
                # its lease end would put it there, and workers take expired leases first for that reason.
                next_attempt_at=func.coalesce(Event.claimed_at, Event.next_attempt_at),
                updated_at=context.now,
            )
            .execution_options(synchronize_session=False)
        )
        recovered = int(result.rowcount or 0)  # type: ignore[attr-defined]
        context.log(f"{recovered} events returned to the queue")
        return Done(count=recovered)


class StatisticsSettings(ActivitySettings):
    backfill_hours: int = Field(48, ge=1, le=24 * 31, description="How far back a first run counts.")


def _hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


class StatisticsActivity(Activity[StatisticsSettings]):
    kind = "hourly_statistics"
    settings_model = StatisticsSettings
    description = "Counts each past hour's events received and ended and messages sent, per type and channel."

    async def run(self, settings: StatisticsSettings, given: dict[str, Any] | None, context: RunContext) -> Done:
        session = context.session
        current = _hour(context.now)
        last = await session.scalar(select(func.max(HourlyStatistic.hour)))
        start = last + timedelta(hours=1) if last else current - timedelta(hours=settings.backfill_hours)
        start = max(start, current - timedelta(hours=settings.backfill_hours))
        hours = 0
        while start < current:
            await _count_hour(session, start)
            start += timedelta(hours=1)
            hours += 1
        context.log(f"{hours} hours counted")
        return Done(count=hours)


async def _count_hour(session: Any, hour: datetime) -> None:
    end = hour + timedelta(hours=1)
    rows: dict[tuple[str, str], dict[str, int]] = {}

    def row(event_type: str, channel: str) -> dict[str, int]:
        return rows.setdefault(
            (event_type, channel), dict.fromkeys(("received", "processed", "ignored", "failed", "messages"), 0)
        )

    received = await session.execute(
        select(Event.type, Event.channel, func.count())
        .where(Event.created_at >= hour, Event.created_at < end)
        .group_by(Event.type, Event.channel)
    )
    for event_type, channel, count in received:
        row(event_type, channel)["received"] = count
    ended = await session.execute(
        select(Event.type, Event.channel, EventStatusChange.status, func.count())
        .join(Event, Event.id == EventStatusChange.event_id)
        .where(EventStatusChange.at >= hour, EventStatusChange.at < end)
        .group_by(Event.type, Event.channel, EventStatusChange.status)
    )
    for event_type, channel, status, count in ended:
        if status == EventStatus.PROCESSED:
            row(event_type, channel)["processed"] += count
        elif status == EventStatus.IGNORED:
            row(event_type, channel)["ignored"] += count
        elif status in (EventStatus.DELIVERY_FAILED, EventStatus.ROUTING_FAILED, EventStatus.TOO_OLD):
            row(event_type, channel)["failed"] += count
    sent = await session.execute(
        select(Event.type, Message.channel, func.count())
        .join(Event, Event.id == Message.event_id)
        .where(Message.created_at >= hour, Message.created_at < end)
        .group_by(Event.type, Message.channel)
    )
    for event_type, channel, count in sent:
        row(event_type, channel)["messages"] += count
    await session.execute(delete(HourlyStatistic).where(HourlyStatistic.hour == hour))
    session.add_all(
        HourlyStatistic(hour=hour, event_type=event_type, channel=channel, **counts)
        for (event_type, channel), counts in rows.items()
    )
    await session.flush()
