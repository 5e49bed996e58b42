"""The Message Center reports over a period, optionally for one event type and one channel: events received,
messages sent and events ended (by final status) per hour, error rates by cause, queue / processing / sending
times, and the queue's depth over time.

Definitions (the README and the console say the same):
- queue time: from when the event was due (received, or its scheduled time if later) to its first claim by a
  worker (``events.claimed_at``);
- processing time: from that first claim to its final status (``events.ended_at``), retries included;
- sending time: from handing a message to its provider to the provider's acceptance (``messages.sent_at -
  messages.send_started_at``), for the messages sent;
- error rates: the events that ended routing_failed, too_old, delivery_failed or ignored, over all that ended.
Events count in the hour they were received, or ended; messages in the hour they were sent. Times are of the
events that ended in the period and the messages sent in it. Percentiles are nearest-rank (timing.py).

Events that ended are found through the timeline (``event_status_changes.at`` is indexed; the final status is
written with ``at`` equal to ``ended_at``), and messages sent through their event's ``processed`` change: a
message is sent in the batch that records its event processed, at the same moment.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Select, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from envoi.db.base import utcnow
from envoi.delivery.models import Message
from envoi.errors import ValidationFailed
from envoi.events.models import Event, EventStatus, EventStatusChange
from envoi.reports.models import QueueSample
from envoi.reports.timing import Timing, as_hour, hour_of, seconds_between, timing_of

DEFAULT_PERIOD = timedelta(hours=24)
LONGEST_PERIOD = timedelta(days=31)
CAUSES = (EventStatus.ROUTING_FAILED, EventStatus.TOO_OLD, EventStatus.DELIVERY_FAILED, EventStatus.IGNORED)
ENDED = (EventStatus.PROCESSED, *CAUSES)
DEPTH_POINTS = 720  # the queue depth series is thinned to at most this many points (the peak of each step)
TOTAL = ""  # the event type and channel of a sample's total row (see watch.py)


@dataclass(frozen=True, slots=True)
class ReportFilter:
    since: datetime
    until: datetime  # exclusive
    event_type: str | None = None
    channel: str | None = None


def report_filter(
    since: datetime | None = None,
    until: datetime | None = None,
    event_type: str | None = None,
    channel: str | None = None,
    *,
    now: datetime | None = None,
) -> ReportFilter:
    """The period asked for (times without a zone are UTC): by default the last 24 hours, at most 31 days."""
    until = _utc(until, "until") if until else now or utcnow()
    since = _utc(since, "since") if since else until - DEFAULT_PERIOD
    if since >= until:
        raise ValidationFailed("since must be before until", field="since")
    if until - since > LONGEST_PERIOD:
        raise ValidationFailed("a report covers at most 31 days", field="since")
    return ReportFilter(since, until, event_type or None, channel or None)


# A day short of datetime's own limits, so the default period before until and the hours counted fit in it.
_EARLIEST, _LATEST = datetime(1, 1, 2, tzinfo=UTC), datetime(9999, 12, 31, tzinfo=UTC)


def _utc(moment: datetime, field: str) -> datetime:
    try:
        utc = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+01:00, say: in UTC, outside the years datetime holds
        utc = None
    if utc is None or not _EARLIEST <= utc <= _LATEST:
        raise ValidationFailed(f"{field} must lie between 0001-01-02 and 9999-12-31 (UTC)", field=field)
    return utc


@dataclass(slots=True)
class Counts:
    """Events received and ended (by final status) and messages sent, in one hour or a whole period."""

    received: int = 0
    sent: int = 0
    ended: dict[EventStatus, int] = field(default_factory=dict)

    @property
    def ended_total(self) -> int:
        return sum(self.ended.values())

    def of(self, status: EventStatus) -> int:
        return self.ended.get(status, 0)

    def rate(self, status: EventStatus) -> float | None:
        return self.of(status) / self.ended_total if self.ended_total else None


@dataclass(frozen=True, slots=True)
class DepthSample:
    at: datetime
    pending: int  # due, waiting for a worker
    processing: int
    paused: int


@dataclass(frozen=True, slots=True)
class Report:
    filter: ReportFilter
    hours: list[tuple[datetime, Counts]]  # every hour of the period, oldest first
    queue_time: Timing
    processing_time: Timing
    sending_time: Timing
    depth: list[DepthSample]  # the highest of each step, oldest first
    depth_step_seconds: int

    @property
    def totals(self) -> Counts:
        total = Counts()
        for _hour, counts in self.hours:
            total.received += counts.received
            total.sent += counts.sent
            for status, count in counts.ended.items():
                total.ended[status] = total.ended.get(status, 0) + count
        return total


def _event_filters(f: ReportFilter) -> list[ColumnElement[bool]]:
    wanted = []
    if f.event_type:
        wanted.append(Event.type == f.event_type)
    if f.channel:
        wanted.append(Event.channel == f.channel)
    return wanted


def _ended(f: ReportFilter, *columns: Any) -> Select[Any]:
    """The events that reached a final status in the period, through the timeline's index."""
    return (
        select(*columns)
        .select_from(EventStatusChange)
        .join(Event, Event.id == EventStatusChange.event_id)
        .where(
            EventStatusChange.at >= f.since,
            EventStatusChange.at < f.until,
            EventStatusChange.status.in_([int(s) for s in ENDED]),
            *_event_filters(f),
        )
    )


def _sent(f: ReportFilter, *columns: Any) -> Select[Any]:
    """The messages sent in the period, found through their event's processed change."""
    query = (
        select(*columns)
        .select_from(EventStatusChange)
        .join(Message, Message.event_id == EventStatusChange.event_id)
        .where(
            EventStatusChange.at >= f.since,
            EventStatusChange.at < f.until,
            EventStatusChange.status == EventStatus.PROCESSED,
            Message.sent_at >= f.since,
            Message.sent_at < f.until,
        )
    )
    if f.event_type:
        query = query.join(Event, Event.id == EventStatusChange.event_id).where(Event.type == f.event_type)
    if f.channel:
        query = query.where(Message.channel == f.channel)
    return query


def _hours(f: ReportFilter) -> list[datetime]:
    hour = f.since.replace(minute=0, second=0, microsecond=0)
    hours = []
    while hour < f.until:
        hours.append(hour)
        hour += timedelta(hours=1)
    return hours


async def hourly_counts(session: AsyncSession, f: ReportFilter) -> list[tuple[datetime, Counts]]:
    per_hour = {hour: Counts() for hour in _hours(f)}
    received = hour_of(session, Event.created_at)
    rows = await session.execute(
        select(received, func.count())
        .where(Event.created_at >= f.since, Event.created_at < f.until, *_event_filters(f))
        .group_by(received)
    )
    for hour, count in rows:
        per_hour[as_hour(hour)].received += int(count)
    ended = hour_of(session, EventStatusChange.at)
    rows = await session.execute(
        _ended(f, ended, EventStatusChange.status, func.count()).group_by(ended, EventStatusChange.status)
    )
    for hour, status, count in rows:
        counts = per_hour[as_hour(hour)].ended
        counts[EventStatus(status)] = counts.get(EventStatus(status), 0) + int(count)
    sent = hour_of(session, Message.sent_at)
    for hour, count in await session.execute(_sent(f, sent, func.count()).group_by(sent)):
        per_hour[as_hour(hour)].sent += int(count)
    return list(per_hour.items())


def _latest(query: Select[Any], latest: int | None) -> Select[Any]:
    """With ``latest``, only the events that ended last (the timeline's index reads them newest first)."""
    return query if latest is None else query.order_by(EventStatusChange.at.desc()).limit(latest)


async def queue_time(session: AsyncSession, f: ReportFilter, *, latest: int | None = None) -> Timing:
    due = case((Event.scheduled_at > Event.created_at, Event.scheduled_at), else_=Event.created_at)
    return await timing_of(session, _latest(_ended(f, seconds_between(session, due, Event.claimed_at)), latest))


async def processing_time(session: AsyncSession, f: ReportFilter, *, latest: int | None = None) -> Timing:
    durations = _ended(f, seconds_between(session, Event.claimed_at, Event.ended_at))
    return await timing_of(session, _latest(durations, latest))


async def sending_time(session: AsyncSession, f: ReportFilter) -> Timing:
    return await timing_of(session, _sent(f, seconds_between(session, Message.send_started_at, Message.sent_at)))


async def queue_depth(session: AsyncSession, f: ReportFilter, sample_seconds: float) -> tuple[list[DepthSample], int]:
    """The samples of the period (each sampled moment once, filtered or not), thinned to at most DEPTH_POINTS
    by keeping the highest of each step; returns them with the step in seconds."""
    if f.event_type or f.channel:
        wanted = QueueSample.event_type != TOTAL
        if f.event_type:
            wanted &= QueueSample.event_type == f.event_type
        if f.channel:
            wanted &= QueueSample.channel == f.channel
    else:
        wanted = (QueueSample.event_type == TOTAL) & (QueueSample.channel == TOTAL)

    def summed(column: Any) -> Any:
        return func.coalesce(func.sum(case((wanted, column), else_=0)), 0)

    rows = await session.execute(
        select(QueueSample.at, summed(QueueSample.pending), summed(QueueSample.processing), summed(QueueSample.paused))
        .where(QueueSample.at >= f.since, QueueSample.at < f.until)
        .group_by(QueueSample.at)
        .order_by(QueueSample.at)
    )
    samples = [DepthSample(at, int(pending), int(processing), int(paused)) for at, pending, processing, paused in rows]
    span = (f.until - f.since).total_seconds()
    step = max(int(sample_seconds), -(-int(span) // DEPTH_POINTS))
    step = -(-step // 60) * 60 if step > 60 else step  # whole minutes, once coarser than one
    return _thinned(samples, step), step


def _thinned(samples: list[DepthSample], step: int) -> list[DepthSample]:
    peaks: dict[int, DepthSample] = {}
    for sample in samples:
        key = int(sample.at.timestamp()) // step
        peak = peaks.get(key)
        if peak is None:
            peaks[key] = sample
        else:
            peaks[key] = DepthSample(
                peak.at,
                max(peak.pending, sample.pending),
                max(peak.processing, sample.processing),
                max(peak.paused, sample.paused),
            )
    return list(peaks.values())


async def build_report(session: AsyncSession, f: ReportFilter, sample_seconds: float) -> Report:
    depth, step = await queue_depth(session, f, sample_seconds)
    return Report(
        filter=f,
        hours=await hourly_counts(session, f),
        queue_time=await queue_time(session, f),
        processing_time=await processing_time(session, f),
        sending_time=await sending_time(session, f),
        depth=depth,
        depth_step_seconds=step,
    )
