"""The watch over the queue: its depth sampled once a moment whatever the number of workers, and the delivery
supervisors told once when a watched figure rises to warning, once more at alert, and once when it is back to
normal, even with several workers checking at the same time."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import httpx
import pytest
from sqlalchemy import select

from envoi.access.groups import add_member
from envoi.access.operators import create_operator
from envoi.db.base import utcnow
from envoi.notifications.models import Notification
from envoi.reports.models import QueueSample, ThresholdState
from envoi.reports.watch import ALERT, WARNING, Crossing, check_thresholds, sample_moment, watch_once, watch_queue
from envoi.runtime import Runtime
from envoi.settings import Settings
from tests.conftest import drain
from tests.helpers import create_type


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "threshold_queue_depth_warning": 2,
            "threshold_queue_depth_alert": 5,
            "threshold_queue_time_warning_seconds": 0,
            "threshold_queue_time_alert_seconds": 0,
            "threshold_processing_time_warning_seconds": 0,
            "threshold_processing_time_alert_seconds": 0,
        }
    )


@pytest.fixture
async def supervisors(runtime: Runtime) -> list[int]:
    """Two delivery supervisors, and an editor who must hear nothing."""
    ids = []
    async with runtime.transaction() as session:
        for login, group in (
            ("sam", "delivery_supervisors"),
            ("sue", "delivery_supervisors"),
            ("ed", "template_editors"),
        ):
            operator = await create_operator(session, email=f"{login}@example.com", name=login, password="x" * 12)
            await add_member(session, group, operator.id)
            if group == "delivery_supervisors":
                ids.append(operator.id)
    return ids


async def _push(api: httpx.AsyncClient, count: int) -> None:
    events = [{"type": "order_confirmation", "email": f"u{i}@example.com", "ctx": {}} for i in range(count)]
    assert (await api.post("/api/v1/events/batch", json={"events": events})).status_code == 202


async def _watch(runtime: Runtime, now: datetime, settings: Settings | None = None) -> list[Crossing]:
    async with runtime.transaction() as session:
        return await watch_once(session, settings or runtime.settings, now)


async def _told(runtime: Runtime) -> list[tuple[int, str, str, str | None]]:
    async with runtime.transaction() as session:
        rows = await session.scalars(select(Notification).order_by(Notification.id))
        return [(n.operator_id, n.category, n.title, n.link) for n in rows]


async def test_a_deep_queue_warns_then_alerts_then_says_it_is_back_to_normal_once_each(
    runtime: Runtime, api: httpx.AsyncClient, supervisors: list[int]
) -> None:
    await create_type(api, "order_confirmation")  # no template: drained events fail routing, it does not matter
    start = sample_moment(utcnow(), 60)
    minute = [start + timedelta(minutes=n) for n in range(6)]
    assert await _watch(runtime, minute[0]) == []
    await _push(api, 3)
    assert [(c.figure.name, c.level, c.value) for c in await _watch(runtime, minute[1])] == [
        ("queue_depth", WARNING, 3)
    ]
    warned = [
        (operator, "info", "Queue depth crossed its warning threshold", "/console/reports") for operator in supervisors
    ]
    assert await _told(runtime) == warned
    assert await _watch(runtime, minute[2]) == []  # still deeper than the warning: nothing new

    await _push(api, 3)
    assert [c.level for c in await _watch(runtime, minute[3])] == [ALERT]
    assert await _watch(runtime, minute[3] + timedelta(seconds=30)) == []  # the minute was sampled and checked
    alerted = [(operator, "action_required", "Queue depth crossed its alert threshold", "/console/reports")
               for operator in supervisors]  # fmt: skip
    assert await _told(runtime) == warned + alerted
    async with runtime.transaction() as session:
        body = (await session.scalars(select(Notification.body).order_by(Notification.id.desc()))).first()
    assert body == "Queue depth: 6 events; warning at 2 events; alert at 5 events."

    await drain(runtime)
    assert [c.level for c in await _watch(runtime, minute[4])] == [0]
    normal = [(operator, "info", "Queue depth is back to normal", "/console/reports") for operator in supervisors]
    assert await _told(runtime) == warned + alerted + normal
    assert await _watch(runtime, minute[5]) == []

    async with runtime.transaction() as session:
        samples = (
            await session.execute(select(QueueSample).order_by(QueueSample.at, QueueSample.event_type))
        ).scalars()
        by_minute = [(s.at, s.event_type, s.channel, s.pending) for s in samples]
    assert by_minute == [
        (minute[0], "", "", 0),
        (minute[1], "", "", 3),
        (minute[1], "order_confirmation", "email", 3),
        (minute[2], "", "", 3),
        (minute[2], "order_confirmation", "email", 3),
        (minute[3], "", "", 6),
        (minute[3], "order_confirmation", "email", 6),
        (minute[4], "", "", 0),
        (minute[5], "", "", 0),
    ]
    period = {"since": minute[0].isoformat(), "until": (minute[5] + timedelta(minutes=1)).isoformat()}
    depth = (await api.get("/api/v1/reports", params=period)).json()["queueDepth"]
    assert depth["stepSeconds"] == 60 and [s["pending"] for s in depth["samples"]] == [0, 3, 3, 6, 0, 0]
    of_type = (await api.get("/api/v1/reports", params=period | {"eventType": "order_confirmation"})).json()
    assert [s["pending"] for s in of_type["queueDepth"]["samples"]] == [0, 3, 3, 6, 0, 0]
    of_sms = (await api.get("/api/v1/reports", params=period | {"channel": "sms"})).json()
    assert [s["pending"] for s in of_sms["queueDepth"]["samples"]] == [0] * 6


async def test_several_workers_watching_at_once_tell_once(
    runtime: Runtime, api: httpx.AsyncClient, supervisors: list[int]
) -> None:
    await create_type(api, "order_confirmation")
    await _push(api, 3)
    now = utcnow()
    results = await asyncio.gather(*(_watch(runtime, now) for _ in range(3)))
    assert sorted(len(r) for r in results) == [0, 0, 1]  # one sampled and checked the moment
    assert len(await _told(runtime)) == 2

    # The thresholds' own guard: processes that sampled different moments, checking the same rise at once.
    async def check() -> list[Crossing]:
        async with runtime.transaction() as session:
            return await check_thresholds(session, runtime.settings, {"queue_depth": 9.0}, utcnow())

    results = await asyncio.gather(*(check() for _ in range(4)))
    assert sorted(len(r) for r in results) == [0, 0, 0, 1]
    assert len(await _told(runtime)) == 4
    async with runtime.transaction() as session:
        state = await session.get(ThresholdState, "queue_depth")
    assert state is not None and (state.level, state.value) == (ALERT, 9.0)


async def test_slow_processing_warns_with_the_window_it_was_measured_over(
    runtime: Runtime, api: httpx.AsyncClient, supervisors: list[int]
) -> None:
    await create_type(api, "order_confirmation")
    await _push(api, 4)
    await drain(runtime)
    settings = runtime.settings.model_copy(update={"threshold_processing_time_warning_seconds": 0.000_001})
    crossings = await _watch(runtime, utcnow(), settings)
    assert [(c.figure.name, c.level) for c in crossings] == [("processing_time_p95", WARNING)]
    async with runtime.transaction() as session:
        body = (await session.scalars(select(Notification.body))).first()
    assert body is not None and body.startswith("p95 processing time: ")
    assert body.endswith(", over the events ended in the last 15 minutes; warning at 0.0 s.")


async def test_the_worker_watches_periodically(runtime: Runtime, supervisors: list[int]) -> None:
    settings = runtime.settings.model_copy(update={"report_sample_seconds": 1.0})
    stop = asyncio.Event()
    watching = asyncio.create_task(watch_queue(settings, runtime.sessionmaker, stop))
    try:
        for _ in range(100):
            async with runtime.transaction() as session:
                if len(list(await session.scalars(select(QueueSample.at)))) >= 2:
                    break
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.wait_for(watching, 5)
    async with runtime.transaction() as session:
        assert len(list(await session.scalars(select(QueueSample.at)))) >= 2
