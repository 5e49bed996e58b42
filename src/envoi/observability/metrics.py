"""What /metrics shows, in Prometheus' text format: events in, messages out by channel and outcome, latency
histograms, webhook calls, and the queue's depth by status.

Counters and histograms count in the process where things happen (the API stores events, workers send). An
``envoi serve`` or ``envoi worker`` process writes them to files in the host's metrics directory
(``collect_across_processes``), and /metrics of any envoi serve process of the host sums every process's
files, including those of processes that ended since the first one started. The queue's depth is not a
process's count: each scrape reads it from the database.

prometheus_client decides how a metric holds its value when the metric's labelled child is created, from
``values.ValueClass``, which it sets at import time from PROMETHEUS_MULTIPROC_DIR. Settings are read after that
import, so ``collect_across_processes`` switches the class itself, and the metrics here are created on first
use, which must come after it.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections import Counter as Tally
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest, values
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from envoi.channels.base import Failed, InvalidAddress, Outcome, Retry, Sent
from envoi.db.base import utcnow
from envoi.delivery.claim import CLAIMABLE
from envoi.events.models import UNENDED, Event, EventStatus
from envoi.observability.multiprocess import join_directory, leave_directory
from envoi.settings import Settings

if TYPE_CHECKING:
    from envoi.delivery.pipeline import Decision

log = structlog.get_logger(__name__)
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4  # the text format every Prometheus server reads
CHANNELS = ("email", "sms", "push")
OUTCOMES: Mapping[type[Outcome], str] = {
    Sent: "sent",
    Retry: "retry",
    Failed: "failed",
    InvalidAddress: "invalid_address",
}
STAGES = ("claim", "render", "send", "record")  # the order of the worker's stage timings
WEBHOOK_RESULTS = ("delivered", "retry", "failed")  # failed: given up, the subscription was disabled
QUEUED = UNENDED
_PAUSED = text(f"events.status = {EventStatus.PAUSED.value}")  # written out, as ix_events_paused's predicate
# From milliseconds to hours: an event waits milliseconds in a healthy queue, hours when it is scheduled or
# retried (12 attempts: about 7 hours).
_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 8 * 3600)
_STAGE = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_CALL = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

_directory: Path | None = None  # set for the life of an envoi serve or envoi worker process


@dataclass(frozen=True, slots=True)
class _Instruments:
    events_received: Counter
    events_handled: Counter
    messages_out: Counter
    queue_seconds: Histogram
    time_to_send_seconds: Histogram
    batch_stage_seconds: Histogram
    webhook_calls: Counter
    webhook_call_seconds: Histogram


@functools.cache
def _instruments() -> _Instruments:
    made = _Instruments(
        events_received=Counter(
            "envoi_events_received",
            "Events stored in the queue (REST, SOAP, workflows, email deliveries), by type and channel.",
            ["type", "channel"],
        ),
        events_handled=Counter(
            "envoi_events_handled",
            "Events a worker took from the queue, by channel and the status it left them in "
            "(pending: a retry, or on to the fallback channel).",
            ["channel", "status"],
        ),
        messages_out=Counter(
            "envoi_messages_out",
            "Messages handed to a provider, by channel and outcome (sent, retry, failed, invalid_address).",
            ["channel", "outcome"],
        ),
        queue_seconds=Histogram(
            "envoi_event_queue_seconds",
            "From an event's receipt to its first claim by a worker (a scheduled event: from its receipt).",
            ["channel"],
            buckets=_LATENCY,
        ),
        time_to_send_seconds=Histogram(
            "envoi_event_time_to_send_seconds",
            "From an event's receipt to its message's acceptance by the provider, retries included.",
            ["channel"],
            buckets=_LATENCY,
        ),
        batch_stage_seconds=Histogram(
            "envoi_batch_stage_seconds",
            "Time a worker spent on one batch, by stage: claim, render, send, record.",
            ["stage"],
            buckets=_STAGE,
        ),
        webhook_calls=Counter(
            "envoi_webhook_calls",
            "Status webhook attempts, by result: delivered, retry (will be tried again), "
            "failed (given up after webhook_retry_hours: the subscription was disabled).",
            ["result"],
        ),
        webhook_call_seconds=Histogram(
            "envoi_webhook_call_seconds", "How long receivers took to answer webhook calls.", buckets=_CALL
        ),
    )
    # Every known series from zero, so that rate() sees the first increase too.
    for channel in CHANNELS:
        for outcome in OUTCOMES.values():
            made.messages_out.labels(channel, outcome)
        made.queue_seconds.labels(channel)
        made.time_to_send_seconds.labels(channel)
    for stage in STAGES:
        made.batch_stage_seconds.labels(stage)
    for result in WEBHOOK_RESULTS:
        made.webhook_calls.labels(result)
    return made


@contextlib.contextmanager
def collect_across_processes(settings: Settings) -> Iterator[None]:
    """For the life of an envoi serve or envoi worker process: count in the host's metrics directory. A directory
    that cannot be used is logged, and the process counts for itself alone."""
    global _directory
    if _instruments.cache_info().currsize:
        raise RuntimeError("metrics were counted before the metrics directory was set up")
    directory = settings.metrics_dir or settings.data_dir / "metrics"
    try:
        lock = join_directory(directory)
    except OSError as error:
        log.warning("metrics.directory_unusable", directory=str(directory), error=str(error))
        yield
        return
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)  # where prometheus_client puts this process's files
    if not getattr(values.ValueClass, "_multiprocess", False):
        values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]
    _directory = directory
    log.info("metrics.directory", directory=str(directory))
    try:
        yield
    finally:
        leave_directory(directory, lock)


# --- counting ----------------------------------------------------------------------------------------------


def count_received(rows: Iterable[Mapping[str, Any]]) -> None:
    """Events just inserted (counted before their transaction commits: one that then fails counts all the same)."""
    counter = _instruments().events_received
    for (event_type, channel), count in Tally((row["type"], row["channel"]) for row in rows).items():
        counter.labels(event_type, channel).inc(count)


def count_batch(decisions: Sequence[Decision], stage_ms: Sequence[float]) -> None:
    """One recorded batch: how each event ended, each message's outcome, queue and sending times, and the time
    each stage took (``stage_ms``, in the order of STAGES)."""
    meters = _instruments()
    now = utcnow()
    claimed = now - timedelta(milliseconds=sum(stage_ms))  # when the batch was claimed
    handled: Tally[tuple[str, str]] = Tally()
    out: Tally[tuple[str, str]] = Tally()
    queued: dict[str, list[float]] = {}
    to_send: dict[str, list[float]] = {}
    for d in decisions:
        channel = d.event.channel
        handled[(channel, d.status.label)] += 1
        if d.event.error_count == 0:  # a first claim: later ones waited for their retry, not in the queue
            queued.setdefault(channel, []).append(_seconds(d.event.created_at, claimed))
        if d.outcome is None:
            continue
        out[(channel, OUTCOMES.get(type(d.outcome), "failed"))] += 1
        if isinstance(d.outcome, Sent):
            to_send.setdefault(channel, []).append(_seconds(d.event.created_at, now))
    for histogram, observed in ((meters.queue_seconds, queued), (meters.time_to_send_seconds, to_send)):
        for channel, seconds in observed.items():
            child = histogram.labels(channel)
            for amount in seconds:
                child.observe(amount)
    for labels, count in handled.items():
        meters.events_handled.labels(*labels).inc(count)
    for labels, count in out.items():
        meters.messages_out.labels(*labels).inc(count)
    for stage, ms in zip(STAGES, stage_ms, strict=False):
        meters.batch_stage_seconds.labels(stage).observe(ms / 1000)


def count_webhook_calls(results: Iterable[tuple[str, int]]) -> None:
    """Webhook attempts just recorded: each one's result (one of WEBHOOK_RESULTS) and latency in milliseconds."""
    meters = _instruments()
    for result, latency_ms in results:
        meters.webhook_calls.labels(result).inc()
        meters.webhook_call_seconds.observe(latency_ms / 1000)


def _seconds(start: datetime, end: datetime) -> float:
    return max((end - start).total_seconds(), 0.0)


# --- scraping ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QueueDepth:
    status: str
    channel: str
    events: int


async def queue_depth(session: AsyncSession) -> list[QueueDepth]:
    """Events waiting in the queue, by status and channel. Each part reads a partial index of the queue
    (ix_events_claim, ix_events_paused), never the ended events."""
    found = []
    for queued in (CLAIMABLE, _PAUSED):
        rows = await session.execute(
            select(Event.status, Event.channel, func.count()).where(queued).group_by(Event.status, Event.channel)
        )
        found += [QueueDepth(EventStatus(status).label, channel, count) for status, channel, count in rows]
    return found


def exposition(depth: Sequence[QueueDepth]) -> bytes:
    """The text Prometheus scrapes: the counts of every process of the host (of this one alone without a
    metrics directory), and the queue depth read for this scrape."""
    _instruments()  # every family is listed, even before anything was counted
    source: Collector = REGISTRY
    if _directory is not None:
        source = CollectorRegistry()
        MultiProcessCollector(source, path=str(_directory))  # type: ignore[no-untyped-call]
    return generate_latest(_Scrape(source, depth))


class _Scrape:
    def __init__(self, source: Collector, depth: Sequence[QueueDepth]) -> None:
        self.source = source
        self.depth = depth

    def collect(self) -> Iterator[Metric]:
        yield from self.source.collect()
        family = GaugeMetricFamily(
            "envoi_queue_depth",
            "Events in the queue now, by status (pending, processing, paused) and channel; read from the database.",
            labels=["status", "channel"],
        )
        counts = {(status.label, channel): 0 for status in QUEUED for channel in CHANNELS}
        counts |= {(d.status, d.channel): d.events for d in self.depth}
        for (status, channel), events in sorted(counts.items()):
            family.add_metric([status, channel], events)
        yield family
