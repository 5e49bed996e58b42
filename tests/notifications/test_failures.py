"""The failure-rate producer: an event type whose events keep failing alerts the delivery supervisors, once per
window, even with several workers checking at the same time."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
from sqlalchemy import select, update

from envoi.db.base import utcnow
from envoi.notifications.failures import alert_failing_types, watch_failure_rates
from envoi.notifications.models import FailureAlert, Notification
from envoi.runtime import Runtime
from tests.conftest import drain
from tests.helpers import create_type, published_template
from tests.notifications.conftest import Operators


async def _push(api: httpx.AsyncClient, event_type: str, count: int) -> None:
    events = [{"type": event_type, "email": f"u{i}@example.com", "ctx": {"orderId": str(i)}} for i in range(count)]
    assert (await api.post("/api/v1/events/batch", json={"events": events})).status_code == 202


async def _notifications(runtime: Runtime) -> list[Notification]:
    async with runtime.transaction() as session:
        return list(await session.scalars(select(Notification).order_by(Notification.id)))


async def _alert(runtime: Runtime) -> list[str]:
    async with runtime.transaction() as session:
        return await alert_failing_types(session, runtime.settings)


async def test_a_failing_type_alerts_the_supervisors_once_per_window(
    api: httpx.AsyncClient, runtime: Runtime, operators: Operators
) -> None:
    await create_type(api, "flaky")  # no template: every event fails routing
    await published_template(api, "order_confirmation")
    await _push(api, "flaky", 20)
    await _push(api, "order_confirmation", 30)
    await drain(runtime)

    assert await _alert(runtime) == ["flaky"]
    made = await _notifications(runtime)
    assert sorted(n.operator_id for n in made) == sorted(
        [operators.ids["sam@example.com"], operators.ids["sue@example.com"]]
    )
    first = made[0]
    assert (first.category, first.title) == ("action_required", "Events of flaky keep failing")
    assert first.body == "20 of the 20 events of flaky that ended in the last 5 minutes failed (routing_failed: 20)."
    assert (first.link, first.object_type, first.object_id) == ("/console/events?type=flaky", "event_type", "flaky")

    assert await _alert(runtime) == []  # still failing, but alerted less than a window ago
    assert len(await _notifications(runtime)) == 2

    async with runtime.transaction() as session:  # a window later, it alerts again
        await session.execute(update(FailureAlert).values(alerted_at=utcnow() - timedelta(minutes=6)))
    assert await _alert(runtime) == ["flaky"]
    assert len(await _notifications(runtime)) == 4


async def test_too_few_events_or_too_few_failures_do_not_alert(
    api: httpx.AsyncClient, runtime: Runtime, operators: Operators
) -> None:
    await create_type(api, "rare")
    await _push(api, "rare", 19)  # all failed, but fewer than 20 ended
    await published_template(api, "order_confirmation")
    await create_type(api, "mostly_fine")
    await _push(api, "mostly_fine", 9)  # 9 failed of 20 ended: under half
    await published_template(api, "mostly_fine")
    await _push(api, "mostly_fine", 11)
    await drain(runtime)
    assert await _alert(runtime) == []
    assert await _notifications(runtime) == []


async def test_several_workers_checking_at_once_alert_once(
    api: httpx.AsyncClient, runtime: Runtime, operators: Operators
) -> None:
    await create_type(api, "flaky")
    await _push(api, "flaky", 25)
    await drain(runtime)
    results = await asyncio.gather(*(_alert(runtime) for _ in range(4)))
    assert sorted(results) == [[], [], [], ["flaky"]]
    assert len(await _notifications(runtime)) == 2


async def test_the_worker_checks_periodically(api: httpx.AsyncClient, runtime: Runtime, operators: Operators) -> None:
    await create_type(api, "flaky")
    await _push(api, "flaky", 20)
    await drain(runtime)
    settings = runtime.settings.model_copy(update={"failure_alert_check_seconds": 0.05})
    stop = asyncio.Event()
    watching = asyncio.create_task(watch_failure_rates(settings, runtime.sessionmaker, stop))
    try:
        for _ in range(100):
            if await _notifications(runtime):
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)  # several more checks: still one alert
    finally:
        stop.set()
        await asyncio.wait_for(watching, 5)
    assert len(await _notifications(runtime)) == 2
