"""Reports: over a period, for one event type and channel or all, events received, messages sent and failures
per hour, error rates by cause, queue / processing / sending times, the queue's depth over time, and where the
watched figures stand against their thresholds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi import Request
from fastapi.responses import HTMLResponse

from envoi.console import charts
from envoi.console.forms import FieldErrors
from envoi.console.rendering import render
from envoi.console.routing import console_router, runtime_of
from envoi.console.session import CanView
from envoi.db.base import utcnow
from envoi.errors import ValidationFailed
from envoi.events.models import EventStatus
from envoi.events.types import list_event_types
from envoi.reports.service import CAUSES, Report, ReportFilter, build_report, report_filter
from envoi.reports.watch import LEVELS, threshold_levels

router = console_router()
PERIODS = {"1h": "Last hour", "6h": "Last 6 hours", "24h": "Last 24 hours", "7d": "Last 7 days", "31d": "Last 31 days"}
_SPANS = {"1h": timedelta(hours=1), "6h": timedelta(hours=6), "24h": timedelta(hours=24),
          "7d": timedelta(days=7), "31d": timedelta(days=31)}  # fmt: skip
CHANNELS = ("email", "sms", "push")


def _moment(value: str, field: str, errors: FieldErrors) -> datetime | None:
    """A date and time from the form's datetime-local field, read as UTC."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        errors[field] = "A date and time as YYYY-MM-DD HH:MM (UTC)."
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def parse_filter(params: dict[str, str], now: datetime) -> tuple[ReportFilter | None, FieldErrors]:
    """From and to, when given, win over the period (default: the last 24 hours)."""
    errors: FieldErrors = {}
    period = params.get("period") or "24h"
    if period not in _SPANS:
        errors["period"] = "Not a period."
    start, end = _moment(params.get("from", ""), "from", errors), _moment(params.get("to", ""), "to", errors)
    channel = params.get("channel", "")
    if channel and channel not in CHANNELS:
        errors["channel"] = "Not a channel."
    if errors:
        return None, errors
    end = end or now
    try:
        wanted = report_filter(start or end - _SPANS[period], end, params.get("type", "").strip(), channel)
    except ValidationFailed as refused:
        return None, {"from": refused.message[:1].upper() + refused.message[1:] + "."}
    return wanted, errors


def duration(seconds: float | None) -> str:
    """A duration as people read it: milliseconds, seconds or minutes."""
    if seconds is None:
        return "—"
    if abs(seconds) < 1:
        return f"{seconds * 1000:.1f} ms"
    if abs(seconds) < 120:
        return f"{seconds:.2f} s"
    return f"{seconds / 60:.1f} min"


def percent(rate: float | None) -> str:
    return "—" if rate is None else f"{rate * 100:.1f} %"


def _depth_points(report: Report) -> list[tuple[datetime, int | None]]:
    """Every step of the period, with its sample's pending events (None where the queue was not sampled), so
    that the chart's time axis is the period's."""
    step = timedelta(seconds=report.depth_step_seconds)
    seconds = step.total_seconds()
    start = datetime.fromtimestamp(report.filter.since.timestamp() // seconds * seconds, UTC)
    steps = -((start - report.filter.until) // step)  # ceil((until - start) / step)
    pending = {(d.at - start) // step: d.pending for d in report.depth}
    return [(start + n * step, pending.get(n)) for n in range(steps)]


@router.get("/reports")
async def reports(request: Request, _viewer: CanView) -> HTMLResponse:
    params = dict(request.query_params)
    runtime = runtime_of(request)
    wanted, errors = parse_filter(params, utcnow())
    async with runtime.transaction() as session:
        report = await build_report(session, wanted, runtime.settings.report_sample_seconds) if wanted else None
        levels = await threshold_levels(session, runtime.settings)
        event_types = [t.name for t in await list_event_types(session)]
    context: dict[str, object] = {
        "values": params,
        "errors": errors,
        "periods": PERIODS,
        "channels": CHANNELS,
        "event_types": event_types,
        "report": report,
        "levels": levels,
        "level_names": LEVELS,
        "window_minutes": f"{runtime.settings.report_window_minutes:g}",
        "duration": duration,
        "percent": percent,
    }
    if report is not None:
        totals = report.totals
        context |= {
            "totals": totals,
            "errors_by_cause": [(s.label, totals.of(s), totals.rate(s)) for s in CAUSES],
            "processed": totals.of(EventStatus.PROCESSED),
            "processed_rate": totals.rate(EventStatus.PROCESSED),
            "causes": CAUSES,
            "timings": [
                ("Queue time", report.queue_time),
                ("Processing time", report.processing_time),
                ("Sending time", report.sending_time),
            ],
            "received_chart": charts.time_bars(
                [(hour, c.received) for hour, c in report.hours], "Events received per hour", noun="events received"
            ),
            "sent_chart": charts.time_bars(
                [(hour, c.sent) for hour, c in report.hours],
                "Messages sent per hour",
                noun="messages sent",
                kind="sent",
            ),
            "failed_chart": charts.time_bars(
                [(hour, sum(c.of(s) for s in CAUSES)) for hour, c in report.hours],
                "Events ended in error per hour",
                noun="events ended in error",
                kind="failed",
            ),
            "depth_chart": charts.time_bars(
                _depth_points(report), "Events waiting for a worker", noun="events waiting"
            ),
        }
    return render(request, "reports.html", context)
