"""The report's counts: error rates by cause for events made to fail, events and messages counted in the hour they
were received, ended or sent, the event type and channel filters, and the questions it refuses."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from envoi.db.base import utcnow
from envoi.delivery.models import Message, MessageStatus
from envoi.delivery.quarantine import add_to_quarantine
from envoi.events.models import Event, EventStatus, EventStatusChange
from envoi.reports.service import processing_time, report_filter
from envoi.runtime import Runtime
from tests.conftest import drain
from tests.helpers import create_type, published_template, push
from tests.smtp_sink import SmtpSink


async def _report(api: httpx.AsyncClient, **params: Any) -> dict[str, Any]:
    answer = await api.get("/api/v1/reports", params=params)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


async def test_error_rates_by_cause(smtp_runtime: Runtime, smtp_api: httpx.AsyncClient, smtp_sink: SmtpSink) -> None:
    await published_template(smtp_api)
    await create_type(smtp_api, "no_template")
    async with smtp_runtime.transaction() as session:
        await add_to_quarantine(session, [("email", "gone@example.com", "550 user unknown")])
    smtp_sink.reject_recipient("refused@example.com")
    for i in range(4):
        await push(smtp_api, email=f"fine{i}@example.com")
    for _ in range(3):
        await push(smtp_api, type="no_template")
    for _ in range(2):
        await push(smtp_api, expiration=(utcnow() - timedelta(seconds=1)).isoformat())
        await push(smtp_api, email="gone@example.com")
    await push(smtp_api, email="refused@example.com")
    await drain(smtp_runtime)

    report = await _report(smtp_api)
    totals = report["totals"]
    assert {k: totals[k] for k in ("received", "sent", "ended", "processed")} == {
        "received": 12,
        "sent": 4,
        "ended": 12,
        "processed": 4,
    }
    assert [(r["cause"], r["count"], r["rate"]) for r in report["errorRates"]] == [
        ("routing_failed", 3, 3 / 12),
        ("too_old", 2, 2 / 12),
        ("delivery_failed", 1, 1 / 12),
        ("ignored", 2, 2 / 12),
    ]
    assert (totals["routingFailed"], totals["tooOld"], totals["deliveryFailed"], totals["ignored"]) == (3, 2, 1, 2)
    timings = report["timings"]
    assert timings["processingTime"]["count"] == 12 and timings["sendingTime"]["count"] == 4


async def _event(
    session: AsyncSession,
    created: datetime,
    *,
    type: str = "order",
    channel: str = "email",
    status: EventStatus = EventStatus.PENDING,
    ended: datetime | None = None,
) -> Event:
    """An event received at ``created``; with ``ended``, it reached ``status`` then (and, processed, its message
    was sent then)."""
    event = Event(
        type=type,
        channel=channel,
        status=status,
        email="a@example.com",
        ctx={},
        created_at=created,
        updated_at=created,
        next_attempt_at=created,
        claimed_at=created if ended else None,
        ended_at=ended,
    )
    session.add(event)
    await session.flush()
    if ended is not None:
        session.add(EventStatusChange(event_id=event.id, status=status, at=ended))
        if status == EventStatus.PROCESSED:
            session.add(Message(event_id=event.id, channel=channel, address="a@example.com",
                                status=MessageStatus.SENT, created_at=ended, updated_at=ended,
                                send_started_at=ended - timedelta(milliseconds=5), sent_at=ended))  # fmt: skip
    return event


def _hour() -> datetime:
    return (utcnow() - timedelta(days=2)).replace(minute=0, second=0, microsecond=0)


async def test_events_and_messages_count_in_the_hour_they_were_received_ended_or_sent(
    runtime: Runtime, api: httpx.AsyncClient
) -> None:
    base = _hour()
    at = {name: base + delta for name, delta in {
        "first": timedelta(minutes=5), "last": timedelta(minutes=59, seconds=59, microseconds=999_999),
        "next": timedelta(hours=1), "later": timedelta(hours=2, minutes=30),
    }.items()}  # fmt: skip
    async with runtime.transaction() as session:
        await _event(session, at["first"], status=EventStatus.PROCESSED, ended=at["last"])
        await _event(session, at["last"], status=EventStatus.ROUTING_FAILED, ended=at["next"])
        await _event(session, at["next"], status=EventStatus.PROCESSED, ended=at["later"])
        await _event(session, at["later"])  # still waiting
        await _event(session, base - timedelta(microseconds=1), status=EventStatus.TOO_OLD, ended=base)
        await _event(session, base + timedelta(hours=3), status=EventStatus.IGNORED, ended=base + timedelta(hours=3))

    report = await _report(api, since=base.isoformat(), until=(base + timedelta(hours=3)).isoformat())
    hours = [
        (h["hour"], h["received"], h["ended"], h["sent"], h["routingFailed"], h["tooOld"]) for h in report["hours"]
    ]
    stamp = [(base + timedelta(hours=n)).isoformat().replace("+00:00", "Z") for n in range(3)]
    assert hours == [
        (stamp[0], 2, 2, 1, 0, 1),  # received first and last; ended last (processed) and base (too_old)
        (stamp[1], 1, 1, 0, 1, 0),
        (stamp[2], 1, 1, 1, 0, 0),
    ]
    assert report["period"] == {
        "since": stamp[0],
        "until": (base + timedelta(hours=3)).isoformat().replace("+00:00", "Z"),
        "eventType": None,
        "channel": None,
    }
    assert report["timings"]["sendingTime"] == {"count": 2, "avgMs": 5.0, "p95Ms": 5.0, "p99Ms": 5.0, "maxMs": 5.0}
    shifted = await _report(api, since=(base + timedelta(minutes=30)).isoformat(), until=at["next"].isoformat())
    assert [(h["received"], h["ended"]) for h in shifted["hours"]] == [(1, 1)]  # the half hour [base+30min, base+1h)


async def test_filters_by_event_type_and_channel(runtime: Runtime, api: httpx.AsyncClient) -> None:
    base = _hour()
    async with runtime.transaction() as session:
        for minutes, (type, channel, status) in enumerate([
            ("a", "email", EventStatus.PROCESSED), ("a", "sms", EventStatus.PROCESSED),
            ("a", "sms", EventStatus.DELIVERY_FAILED), ("b", "email", EventStatus.PROCESSED),
            ("b", "sms", EventStatus.IGNORED), ("b", "sms", EventStatus.IGNORED),
        ]):  # fmt: skip
            created = base + timedelta(minutes=minutes)
            await _event(session, created, type=type, channel=channel, status=status, ended=created)
    period = {"since": base.isoformat(), "until": (base + timedelta(hours=1)).isoformat()}

    async def totals(**wanted: str) -> tuple[int, ...]:
        found = (await _report(api, **period, **wanted))["totals"]
        return found["received"], found["sent"], found["processed"], found["deliveryFailed"], found["ignored"]

    assert await totals() == (6, 3, 3, 1, 2)
    assert await totals(eventType="a") == (3, 2, 2, 1, 0)
    assert await totals(channel="sms") == (4, 1, 1, 1, 2)
    assert await totals(eventType="b", channel="sms") == (2, 0, 0, 0, 2)
    assert await totals(eventType="c") == (0, 0, 0, 0, 0)
    report = await _report(api, **period, eventType="a", channel="sms")
    assert report["period"]["eventType"] == "a" and report["period"]["channel"] == "sms"
    assert [r["rate"] for r in report["errorRates"]] == [0.0, 0.0, 0.5, 0.0]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"since": "yesterday"}, "since"),
        ({"until": "2026-13-01T00:00:00Z"}, "until"),
        ({"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, "since"),
        ({"since": "2026-01-01T00:00:00Z", "until": "2026-02-01T00:00:01Z"}, "since"),
        ({"channel": "fax"}, "channel"),
        ({"eventType": "x" * 101}, "eventType"),
    ],
)
async def test_bad_questions_are_refused_naming_the_field(
    api: httpx.AsyncClient, params: dict[str, str], field: str
) -> None:
    answer = await api.get("/api/v1/reports", params=params)
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["field"] == field


async def test_the_watched_times_can_be_those_of_the_last_events_ended(runtime: Runtime) -> None:
    base = _hour()
    async with runtime.transaction() as session:
        for seconds in (10, 20, 30, 40, 50):  # claimed at base: the later it ended, the longer it took
            await _event(session, base, status=EventStatus.PROCESSED, ended=base + timedelta(seconds=seconds))
    period = report_filter(base, base + timedelta(hours=1))
    async with runtime.transaction() as session:
        every = await processing_time(session, period)
        last = await processing_time(session, period, latest=2)
    assert (every.count, every.avg, every.p95, every.max) == (5, 30.0, 50.0, 50.0)
    assert (last.count, last.avg, last.p95) == (2, 45.0, 50.0)
