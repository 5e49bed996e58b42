"""The REST shapes of the reports and of per template version figures. Durations are in milliseconds (to the
microsecond); rates are shares of 1."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from envoi.events.models import EventStatus
from envoi.reports.figures import VersionFigures
from envoi.reports.service import CAUSES, Counts, Report
from envoi.reports.timing import Timing


class _Camel(BaseModel):
    model_config = ConfigDict(populate_by_name=True)


class PeriodOut(_Camel):
    since: datetime
    until: datetime = Field(description="Exclusive.")
    event_type: str | None = Field(alias="eventType")
    channel: str | None


class CountsOut(_Camel):
    received: int = Field(description="Events received.")
    sent: int = Field(description="Messages accepted by their provider.")
    ended: int = Field(description="Events that reached a final status (the five below).")
    processed: int
    ignored: int
    delivery_failed: int = Field(alias="deliveryFailed")
    routing_failed: int = Field(alias="routingFailed")
    too_old: int = Field(alias="tooOld")

    @classmethod
    def of(cls, counts: Counts) -> CountsOut:
        return cls(
            received=counts.received,
            sent=counts.sent,
            ended=counts.ended_total,
            processed=counts.of(EventStatus.PROCESSED),
            ignored=counts.of(EventStatus.IGNORED),
            delivery_failed=counts.of(EventStatus.DELIVERY_FAILED),
            routing_failed=counts.of(EventStatus.ROUTING_FAILED),
            too_old=counts.of(EventStatus.TOO_OLD),
        )


class HourOut(CountsOut):
    hour: datetime = Field(description="The hour's start (UTC).")


class ErrorRateOut(_Camel):
    cause: str = Field(description="routing_failed, too_old, delivery_failed or ignored.")
    count: int
    rate: float | None = Field(description="Of the events that ended; null when none did.")


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


class TimingOut(_Camel):
    count: int = Field(description="How many were measured.")
    avg_ms: float | None = Field(alias="avgMs")
    p95_ms: float | None = Field(alias="p95Ms", description="Nearest rank: the ceil(0.95 n)-th shortest.")
    p99_ms: float | None = Field(alias="p99Ms", description="Nearest rank: the ceil(0.99 n)-th shortest.")
    max_ms: float | None = Field(alias="maxMs")

    @classmethod
    def of(cls, timing: Timing) -> TimingOut:
        return cls(
            count=timing.count,
            avg_ms=_ms(timing.avg),
            p95_ms=_ms(timing.p95),
            p99_ms=_ms(timing.p99),
            max_ms=_ms(timing.max),
        )


class TimingsOut(_Camel):
    queue_time: TimingOut = Field(
        alias="queueTime",
        description="From when each event was due (received, or scheduled if later) to its first claim.",
    )
    processing_time: TimingOut = Field(
        alias="processingTime", description="From its first claim to its final status, retries included."
    )
    sending_time: TimingOut = Field(
        alias="sendingTime", description="From handing each sent message to its provider to the provider's acceptance."
    )


class DepthOut(_Camel):
    at: datetime
    pending: int = Field(description="Events due and waiting for a worker.")
    processing: int
    paused: int


class QueueDepthOut(_Camel):
    step_seconds: int = Field(alias="stepSeconds", description="Each sample is the highest of its step.")
    samples: list[DepthOut]


class ReportOut(_Camel):
    period: PeriodOut
    totals: CountsOut
    error_rates: list[ErrorRateOut] = Field(alias="errorRates")
    timings: TimingsOut
    hours: list[HourOut]
    queue_depth: QueueDepthOut = Field(alias="queueDepth")

    @classmethod
    def of(cls, report: Report) -> ReportOut:
        f, totals = report.filter, report.totals
        return cls(
            period=PeriodOut(since=f.since, until=f.until, event_type=f.event_type, channel=f.channel),
            totals=CountsOut.of(totals),
            error_rates=[ErrorRateOut(cause=s.label, count=totals.of(s), rate=totals.rate(s)) for s in CAUSES],
            timings=TimingsOut(
                queue_time=TimingOut.of(report.queue_time),
                processing_time=TimingOut.of(report.processing_time),
                sending_time=TimingOut.of(report.sending_time),
            ),
            hours=[HourOut(hour=hour, **CountsOut.of(counts).model_dump()) for hour, counts in report.hours],
            queue_depth=QueueDepthOut(
                step_seconds=report.depth_step_seconds,
                samples=[
                    DepthOut(at=d.at, pending=d.pending, processing=d.processing, paused=d.paused) for d in report.depth
                ],
            ),
        )


class VersionFiguresOut(_Camel):
    version: int
    published_at: datetime = Field(alias="publishedAt")
    live: bool
    sent: int = Field(description="Messages accepted by their provider.")
    delivered: int = Field(description="Confirmed by a delivery receipt (SMS; email has none).")
    bounced: int = Field(description="Sent back for good by the receiving mail server.")
    opened: int = Field(description="Opened by a person at least once.")
    clicked: int = Field(description="With a link clicked by a person at least once.")

    @classmethod
    def of(cls, version: VersionFigures) -> VersionFiguresOut:
        figures = version.figures
        return cls(
            version=version.number,
            published_at=version.published_at,
            live=version.live,
            sent=figures.sent,
            delivered=figures.delivered,
            bounced=figures.bounced,
            opened=figures.opened,
            clicked=figures.clicked,
        )
