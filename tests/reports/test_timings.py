"""The issue's check: a few hundred events sent through the real SMTP sink, and the report's queue, processing
and sending times (average, nearest-rank p95 and p99) equal those computed here from the raw timestamps."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from envoi.db.base import utcnow
from envoi.delivery.models import Message
from envoi.events.models import Event
from envoi.runtime import Runtime
from envoi.settings import Settings
from tests.conftest import drain
from tests.helpers import published_template
from tests.smtp_sink import SmtpSink

EVENTS, SCHEDULED = 300, 30


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"worker_batch_size": 20})  # many batches: many different times


def nearest_rank(values: list[float], percentile: int) -> float:
    ordered = sorted(values)
    return ordered[-(-percentile * len(ordered) // 100) - 1]  # the ceil(p / 100 * n)-th, in integers


def expected(values: list[float]) -> dict[str, Any]:
    def ms(seconds: float) -> float:
        return round(seconds * 1000, 3)

    return {
        "count": len(values),
        "avgMs": sum(values) / len(values) * 1000,
        "p95Ms": ms(nearest_rank(values, 95)),
        "p99Ms": ms(nearest_rank(values, 99)),
        "maxMs": ms(max(values)),
    }


def assert_same(reported: dict[str, Any], wanted: dict[str, Any]) -> None:
    assert reported["count"] == wanted["count"]
    assert reported["avgMs"] == pytest.approx(wanted["avgMs"], abs=0.001)  # to the microsecond
    assert (reported["p95Ms"], reported["p99Ms"], reported["maxMs"]) == (
        wanted["p95Ms"],
        wanted["p99Ms"],
        wanted["maxMs"],
    )


def seconds(start: datetime, end: datetime) -> float:
    return (end - start).total_seconds()


async def test_the_reported_times_match_those_of_the_raw_timestamps(
    smtp_runtime: Runtime, smtp_api: httpx.AsyncClient, smtp_sink: SmtpSink
) -> None:
    await published_template(smtp_api)
    started = utcnow()
    soon = (started + timedelta(milliseconds=400)).isoformat()
    events = [
        {"type": "order_confirmation", "email": f"u{i}@example.com", "ctx": {"orderId": str(i)}}
        | ({"scheduled": soon} if i < SCHEDULED else {})
        for i in range(EVENTS)
    ]
    for start in range(0, EVENTS, 100):
        answer = await smtp_api.post("/api/v1/events/batch", json={"events": events[start : start + 100]})
        assert answer.status_code == 202, answer.text
    await drain(smtp_runtime)
    assert len(smtp_sink.messages) == EVENTS

    async with smtp_runtime.transaction() as session:
        rows = (
            await session.execute(select(Event.created_at, Event.scheduled_at, Event.claimed_at, Event.ended_at))
        ).all()
        sends = (await session.execute(select(Message.send_started_at, Message.sent_at))).all()
    assert len(rows) == EVENTS and all(claimed and ended for _c, _s, claimed, ended in rows)
    queue = [seconds(max(created, scheduled or created), claimed) for created, scheduled, claimed, _e in rows]
    processing = [seconds(claimed, ended) for _c, _s, claimed, ended in rows]
    sending = [seconds(begun, sent) for begun, sent in sends]
    assert min(queue) >= 0 and len(set(processing)) > 1 and min(sending) > 0

    params = {
        "since": (started - timedelta(minutes=1)).isoformat(),
        "until": (utcnow() + timedelta(minutes=1)).isoformat(),
    }
    answer = await smtp_api.get("/api/v1/reports", params=params)
    assert answer.status_code == 200, answer.text
    report = answer.json()
    timings = report["timings"]
    assert_same(timings["processingTime"], expected(processing))
    assert_same(timings["queueTime"], expected(queue))
    assert_same(timings["sendingTime"], expected(sending))
    totals = report["totals"]
    assert (totals["received"], totals["sent"], totals["ended"], totals["processed"]) == (EVENTS,) * 4
    assert [(r["cause"], r["count"], r["rate"]) for r in report["errorRates"]] == [
        ("routing_failed", 0, 0.0),
        ("too_old", 0, 0.0),
        ("delivery_failed", 0, 0.0),
        ("ignored", 0, 0.0),
    ]
    assert sum(hour["sent"] for hour in report["hours"]) == EVENTS
