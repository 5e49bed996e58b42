"""The worker's watch over the queue: every ``report_sample_seconds`` it samples the queue's depth per event type
and channel (for the reports' chart) and checks the watched figures against their warning and alert thresholds,
telling the ``delivery_supervisors`` group in-app when one rises to warning or alert, and when it is back to
normal.

Several worker processes run this. The first to sample a moment writes its total row (event type and channel
empty) with an insert that does nothing on conflict; only that process writes the moment's other rows and checks
the thresholds, so each moment is sampled and checked once. A level change is recorded by an update conditional
on the level it replaces, in the transaction that notifies: of processes racing, exactly one makes it.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy import case, func, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from envoi.db.base import utcnow
from envoi.delivery.claim import CLAIMABLE
from envoi.events.models import Event, EventStatus
from envoi.notifications.failures import SUPERVISORS
from envoi.notifications.service import Category, Recipients, notify
from envoi.reports.models import QueueSample, ThresholdState
from envoi.reports.service import TOTAL, ReportFilter, processing_time, queue_time
from envoi.settings import Settings

log = structlog.get_logger(__name__)

NORMAL, WARNING, ALERT = 0, 1, 2
LEVELS = ("normal", "warning", "alert")
REPORTS_PAGE = "/console/reports"
# The watched times are of at most this many of the window's last ended events: each minute's check stays in
# tens of milliseconds (SQLite has one connection for everything) however busy the window was.
WATCHED_EVENTS = 10_000


@dataclass(frozen=True, slots=True)
class Depth:
    event_type: str
    channel: str
    pending: int
    processing: int
    paused: int


@dataclass(frozen=True, slots=True)
class Watched:
    """A figure watched against its thresholds (0: that threshold is off)."""

    name: str  # its row in threshold_states
    label: str
    warning: float
    alert: float
    unit: str  # how its value reads: "events", "s"

    def level_of(self, value: float | None) -> int:
        if value is None:
            return NORMAL
        if self.alert and value >= self.alert:
            return ALERT
        if self.warning and value >= self.warning:
            return WARNING
        return NORMAL

    def shown(self, value: float | None) -> str:
        if value is None:
            return "nothing measured"
        return f"{value:,.0f} events" if self.unit == "events" else f"{value:,.1f} s"


@dataclass(frozen=True, slots=True)
class Crossing:
    figure: Watched
    level: int
    previous: int
    value: float | None


def watched_figures(settings: Settings) -> list[Watched]:
    return [
        Watched(
            "queue_depth",
            "Queue depth",
            settings.threshold_queue_depth_warning,
            settings.threshold_queue_depth_alert,
            "events",
        ),
        Watched(
            "queue_time_p95",
            "p95 queue time",
            settings.threshold_queue_time_warning_seconds,
            settings.threshold_queue_time_alert_seconds,
            "s",
        ),
        Watched(
            "processing_time_p95",
            "p95 processing time",
            settings.threshold_processing_time_warning_seconds,
            settings.threshold_processing_time_alert_seconds,
            "s",
        ),
    ]


async def queue_now(session: AsyncSession, now: datetime) -> list[Depth]:
    """Per event type and channel: events due and waiting for a worker, being processed, and paused (scheduled
    events and retries not yet due are not waiting). Each count reads its partial index's rows only."""
    found: dict[tuple[str, str], list[int]] = {}
    waiting = func.sum(case(((Event.status == EventStatus.PENDING) & (Event.next_attempt_at <= now), 1), else_=0))
    processing = func.sum(case((Event.status == EventStatus.PROCESSING, 1), else_=0))
    rows = await session.execute(
        select(Event.type, Event.channel, waiting, processing).where(CLAIMABLE).group_by(Event.type, Event.channel)
    )
    for event_type, channel, pending_count, processing_count in rows:
        found[(event_type, channel)] = [int(pending_count or 0), int(processing_count or 0), 0]
    rows = await session.execute(
        select(Event.type, Event.channel, func.count())
        .where(Event.status == EventStatus.PAUSED)
        .group_by(Event.type, Event.channel)
    )
    for event_type, channel, count in rows:
        found.setdefault((event_type, channel), [0, 0, 0])[2] = int(count)
    return [Depth(t, c, *counts) for (t, c), counts in sorted(found.items()) if any(counts)]


def sample_moment(now: datetime, interval_seconds: float) -> datetime:
    """The moment a sample is filed under: ``now`` rounded down to the interval (a whole minute by default)."""
    step = max(int(interval_seconds), 1)
    return datetime.fromtimestamp(int(now.timestamp()) // step * step, UTC)


async def record_sample(session: AsyncSession, at: datetime, depths: list[Depth]) -> bool:
    """File the queue's depth at ``at``, unless another process did; True for the process that did."""
    insert = postgresql_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    total = Depth(
        TOTAL, TOTAL, *(sum(getattr(d, name) for d in depths) for name in ("pending", "processing", "paused"))
    )
    claimed = (
        insert(QueueSample)
        .values(_row(at, total))
        .on_conflict_do_nothing(index_elements=[QueueSample.at, QueueSample.event_type, QueueSample.channel])
        .returning(QueueSample.at)
    )
    if (await session.execute(claimed)).first() is None:
        return False
    if depths:
        await session.execute(insert(QueueSample), [_row(at, depth) for depth in depths])
    return True


def _row(at: datetime, depth: Depth) -> dict[str, object]:
    return {
        "at": at,
        "event_type": depth.event_type,
        "channel": depth.channel,
        "pending": depth.pending,
        "processing": depth.processing,
        "paused": depth.paused,
    }


async def watched_values(
    session: AsyncSession, settings: Settings, depths: list[Depth], now: datetime
) -> dict[str, float | None]:
    """Each watched figure's value now: the events waiting, and the p95 times of the events that ended in the
    last ``report_window_minutes``, at most the last WATCHED_EVENTS of them (None when none did). A figure whose
    thresholds are both off is not measured."""
    window = ReportFilter(now - timedelta(minutes=settings.report_window_minutes), now)
    values: dict[str, float | None] = {}
    for figure in watched_figures(settings):
        if not (figure.warning or figure.alert):
            values[figure.name] = None
        elif figure.name == "queue_depth":
            values[figure.name] = float(sum(d.pending for d in depths))
        elif figure.name == "queue_time_p95":
            values[figure.name] = (await queue_time(session, window, latest=WATCHED_EVENTS)).p95
        else:
            values[figure.name] = (await processing_time(session, window, latest=WATCHED_EVENTS)).p95
    return values


async def check_thresholds(
    session: AsyncSession, settings: Settings, values: dict[str, float | None], now: datetime
) -> list[Crossing]:
    """Record each figure's level and notify the supervisors of each rise and each return to normal (a fall
    from alert to warning is recorded, not announced); returns the changes this call made."""
    insert = postgresql_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    figures = watched_figures(settings)
    await session.execute(
        insert(ThresholdState)
        .values([{"name": f.name, "level": NORMAL, "value": None, "changed_at": now} for f in figures])
        .on_conflict_do_nothing(index_elements=[ThresholdState.name])
    )
    names = [f.name for f in figures]
    rows = await session.execute(
        select(ThresholdState.name, ThresholdState.level).where(ThresholdState.name.in_(names))
    )
    levels = {name: level for name, level in rows}
    crossings = []
    for figure in figures:
        value = values.get(figure.name)
        level, previous = figure.level_of(value), levels[figure.name]
        if level == previous:
            continue
        changed = await session.execute(
            update(ThresholdState)
            .where(ThresholdState.name == figure.name, ThresholdState.level == previous)
            .values(level=level, value=value, changed_at=now)
            .returning(ThresholdState.name)
            .execution_options(synchronize_session=False)
        )
        if changed.first() is None:  # another process recorded this change first
            continue
        crossing = Crossing(figure, level, previous, value)
        crossings.append(crossing)
        if level > previous or level == NORMAL:
            await _tell_supervisors(session, settings, crossing)
    return crossings


async def _tell_supervisors(session: AsyncSession, settings: Settings, crossing: Crossing) -> None:
    figure, value = crossing.figure, crossing.value
    limits = "; ".join(
        f"{name} at {figure.shown(limit)}"
        for name, limit in (("warning", figure.warning), ("alert", figure.alert))
        if limit
    )
    over = (
        ""
        if figure.unit == "events"
        else f", over the events ended in the last {settings.report_window_minutes:g} minutes"
    )
    if crossing.level == NORMAL:
        title, category = f"{figure.label} is back to normal", Category.INFO
    else:
        title = f"{figure.label} crossed its {LEVELS[crossing.level]} threshold"
        category = Category.ACTION_REQUIRED if crossing.level == ALERT else Category.INFO
    await notify(
        session,
        Recipients(groups=[SUPERVISORS]),
        category=category,
        title=title,
        body=f"{figure.label}: {figure.shown(value)}{over}; {limits}.",
        link=REPORTS_PAGE,
    )


async def watch_once(session: AsyncSession, settings: Settings, now: datetime | None = None) -> list[Crossing]:
    """Sample the queue and check the thresholds, unless another process already did for this moment."""
    now = now or utcnow()
    depths = await queue_now(session, now)
    if not await record_sample(session, sample_moment(now, settings.report_sample_seconds), depths):
        return []
    return await check_thresholds(session, settings, await watched_values(session, settings, depths, now), now)


async def watch_queue(settings: Settings, sessionmaker: async_sessionmaker[AsyncSession], stop: asyncio.Event) -> None:
    """The worker's periodic watch, until ``stop``."""
    while not stop.is_set():
        try:
            async with sessionmaker.begin() as session:
                crossings = await watch_once(session, settings)
            for c in crossings:
                log.warning(
                    "reports.threshold_crossed",
                    figure=c.figure.name,
                    level=LEVELS[c.level],
                    previous=LEVELS[c.previous],
                    value=c.value,
                    group=SUPERVISORS,
                )
        except Exception:
            log.exception("reports.watch_failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), settings.report_sample_seconds)


async def threshold_levels(session: AsyncSession, settings: Settings) -> list[tuple[Watched, ThresholdState | None]]:
    """Each watched figure with where it stands (None: never checked yet)."""
    figures = watched_figures(settings)
    states = {
        state.name: state
        for state in await session.scalars(
            select(ThresholdState).where(ThresholdState.name.in_([f.name for f in figures]))
        )
    }
    return [(figure, states.get(figure.name)) for figure in figures]
