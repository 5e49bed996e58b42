"""Alerting the delivery supervisors when an event type's events keep failing.

Every ``failure_alert_check_seconds`` the worker counts, per event type, the events that ended in the last
``failure_alert_window_seconds`` (read from the timeline) and how many of them failed (delivery_failed,
routing_failed, too_old). A type with at least ``failure_alert_min_events`` ended and a failed share of at
least ``failure_alert_ratio`` notifies the ``delivery_supervisors`` group, at most once per window: the alert
is recorded by an upsert that only changes a row whose last alert is older than the window, so with several
workers exactly one wins, in the same transaction as the notifications it sends.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from envoi.db.base import utcnow
from envoi.events.models import Event, EventStatus, EventStatusChange
from envoi.notifications.email import EVENT_TYPE as NOTIFICATION_EVENT_TYPE
from envoi.notifications.email import EmailCopy
from envoi.notifications.models import FailureAlert
from envoi.notifications.objects import ObjectRef
from envoi.notifications.service import Category, Recipients, notify
from envoi.settings import Settings

log = structlog.get_logger(__name__)

SUPERVISORS = "delivery_supervisors"
FAILED = (EventStatus.DELIVERY_FAILED, EventStatus.ROUTING_FAILED, EventStatus.TOO_OLD)
ENDED = (EventStatus.PROCESSED, EventStatus.IGNORED, *FAILED)


@dataclass(frozen=True)
class FailureRate:
    event_type: str
    ended: int
    failed: dict[str, int]  # by status label

    @property
    def failed_total(self) -> int:
        return sum(self.failed.values())


async def failure_rates(session: AsyncSession, since: datetime) -> list[FailureRate]:
    """Per event type, the events that ended since ``since`` and those of them that failed."""
    rows = await session.execute(
        select(Event.type, EventStatusChange.status, func.count())
        .join(Event, Event.id == EventStatusChange.event_id)
        .where(EventStatusChange.at >= since, EventStatusChange.status.in_([int(s) for s in ENDED]))
        .group_by(Event.type, EventStatusChange.status)
    )
    ended: dict[str, int] = {}
    failed: dict[str, dict[str, int]] = {}
    for event_type, status, count in rows:
        ended[event_type] = ended.get(event_type, 0) + count
        if status in FAILED:
            failed.setdefault(event_type, {})[EventStatus(status).label] = count
    return [FailureRate(name, total, failed.get(name, {})) for name, total in sorted(ended.items())]


def is_failing(rate: FailureRate, settings: Settings) -> bool:
    return rate.ended >= settings.failure_alert_min_events and (
        rate.failed_total >= settings.failure_alert_ratio * rate.ended
    )


async def _claim_alert(session: AsyncSession, rate: FailureRate, now: datetime, window: timedelta) -> bool:
    """Record this alert unless the type alerted less than a window ago; True for the one caller that did."""
    insert = postgresql_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    values = {"alerted_at": now, "failed": rate.failed_total, "ended": rate.ended}
    claimed = (
        insert(FailureAlert)
        .values(event_type=rate.event_type, **values)
        .on_conflict_do_update(
            index_elements=[FailureAlert.event_type], set_=values, where=FailureAlert.alerted_at <= now - window
        )
        .returning(FailureAlert.event_type)
    )
    return (await session.execute(claimed)).first() is not None


def _minutes(seconds: float) -> str:
    minutes = seconds / 60
    return f"{minutes:g} minute{'s' if minutes != 1 else ''}"


async def alert_failing_types(session: AsyncSession, settings: Settings, now: datetime | None = None) -> list[str]:
    """Notify the delivery supervisors of each failing event type not alerted within the window; returns the
    types alerted."""
    now = now or utcnow()
    window = timedelta(seconds=settings.failure_alert_window_seconds)
    alerted = []
    for rate in await failure_rates(session, now - window):
        if not is_failing(rate, settings) or not await _claim_alert(session, rate, now, window):
            continue
        detail = ", ".join(f"{label}: {count}" for label, count in sorted(rate.failed.items()))
        await notify(
            session,
            Recipients(groups=[SUPERVISORS]),
            category=Category.ACTION_REQUIRED,
            title=f"Events of {rate.event_type} keep failing",
            body=f"{rate.failed_total} of the {rate.ended} events of {rate.event_type} that ended in the last "
            f"{_minutes(settings.failure_alert_window_seconds)} failed ({detail}).",
            about=ObjectRef("event_type", rate.event_type),
            # Alerts about notification emails themselves stay in the console: mailing them would feed the fire.
            email=EmailCopy.of(settings) if rate.event_type != NOTIFICATION_EVENT_TYPE else None,
        )
        alerted.append(rate.event_type)
    return alerted


async def watch_failure_rates(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession], stop: asyncio.Event
) -> None:
    """The worker's periodic check, until ``stop``."""
    while not stop.is_set():
        try:
            async with sessionmaker.begin() as session:
                alerted = await alert_failing_types(session, settings)
            for event_type in alerted:
                log.warning("notifications.failure_alert", event_type=event_type, group=SUPERVISORS)
        except Exception:
            log.exception("notifications.failure_check_failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), settings.failure_alert_check_seconds)
