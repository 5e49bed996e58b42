"""The scheduler: workflows run on their cron schedule, one run at a time; paused workflows remind their
supervisors and are stopped after enough reminders; on PostgreSQL one process leads and another takes over
when it dies."""

from __future__ import annotations

import asyncio
import os
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select, update

from envoi.db.meta import get_meta
from envoi.notifications.models import Notification
from envoi.runtime import Runtime
from envoi.workflows.models import Workflow, WorkflowRun
from envoi.workflows.scheduler import remind_paused
from tests.processes import start_envoi, wait_for_text
from tests.workflows.conftest import SUPERVISORS, Operators, definition, settle

WAITING = definition(
    {
        "name": "start",
        "kind": "scheduler",
        "settings": {"cron": "*/15 * * * *", "timezone": "Europe/Paris"},
        "next": ["pause"],
    },
    {"name": "pause", "kind": "wait", "settings": {"duration": "1h"}, "next": ["end"]},
    {"name": "end", "kind": "end"},
)


async def _due_now(runtime: Runtime, workflow_id: int) -> None:
    async with runtime.transaction() as session:
        await session.execute(
            update(Workflow)
            .where(Workflow.id == workflow_id)
            .values(next_run_at=datetime.now(UTC) - timedelta(seconds=1))
        )


async def _runs(runtime: Runtime, workflow_id: int) -> list[WorkflowRun]:
    async with runtime.transaction() as session:
        return list(await session.scalars(select(WorkflowRun).where(WorkflowRun.workflow_id == workflow_id)))


async def test_a_started_workflow_runs_when_its_time_comes_and_never_twice_at_once(
    wf_api: httpx.AsyncClient, wf_runtime: Runtime
) -> None:
    workflow = (await wf_api.post("/api/v1/workflows", json={"name": "slow", "definition": WAITING})).json()
    started = (await wf_api.post(f"/api/v1/workflows/{workflow['id']}/start")).json()
    next_run = datetime.fromisoformat(started["nextRunAt"])
    now = datetime.now(UTC)
    assert now < next_run <= now + timedelta(minutes=15) and next_run.minute % 15 == 0 and next_run.second == 0
    await settle(wf_runtime)
    assert await _runs(wf_runtime, workflow["id"]) == []  # not yet

    await _due_now(wf_runtime, workflow["id"])
    await settle(wf_runtime)
    [run] = await _runs(wf_runtime, workflow["id"])
    assert (run.trigger, run.status, [p["activity"] for p in run.pending]) == ("schedule", "running", ["end"])
    assert run.resume_at is not None and run.resume_at > datetime.now(UTC) + timedelta(minutes=59)  # waits 1h
    rescheduled = (await wf_api.get(f"/api/v1/workflows/{workflow['id']}")).json()
    assert datetime.fromisoformat(rescheduled["nextRunAt"]) > datetime.now(UTC)

    await _due_now(wf_runtime, workflow["id"])  # its time comes again while the first run waits
    await settle(wf_runtime)
    assert len(await _runs(wf_runtime, workflow["id"])) == 1


async def test_envois_own_workflows_are_started_and_scheduled(wf_api: httpx.AsyncClient, wf_runtime: Runtime) -> None:
    await settle(wf_runtime)
    shipped = {w["name"]: w for w in (await wf_api.get("/api/v1/workflows")).json() if w["technical"]}
    assert set(shipped) == {"purge", "recover_leases", "hourly_statistics", "email_deliveries"}
    assert {w["state"] for w in shipped.values()} == {"started"}
    purge = datetime.fromisoformat(shipped["purge"]["nextRunAt"])
    assert (purge.hour, purge.minute) == (3, 30)
    assert datetime.fromisoformat(shipped["recover_leases"]["nextRunAt"]).minute % 5 == 0
    assert datetime.fromisoformat(shipped["hourly_statistics"]["nextRunAt"]).minute == 5
    assert datetime.fromisoformat(shipped["email_deliveries"]["nextRunAt"]).second == 0  # every minute


async def test_a_paused_workflow_reminds_its_supervisors_weekly_then_stops(
    wf_api: httpx.AsyncClient, wf_runtime: Runtime, people: Operators
) -> None:
    settings = wf_runtime.settings  # defaults: after 7 days, every 7 days, 4 reminders
    body = {"name": "weekly", "label": "Weekly digest", "definition": WAITING, "supervisors": "workflow_supervisors"}
    workflow = (await wf_api.post("/api/v1/workflows", json=body)).json()
    await wf_api.post(f"/api/v1/workflows/{workflow['id']}/start")
    paused = (await wf_api.post(f"/api/v1/workflows/{workflow['id']}/pause")).json()
    since = datetime.fromisoformat(paused["pausedAt"])

    async def remind(after_days: float) -> list[tuple[str, int]]:
        async with wf_runtime.transaction() as session:
            await remind_paused(session, settings, since + timedelta(days=after_days))
            notices = await session.scalars(select(Notification).order_by(Notification.id))
            return [(n.title, n.operator_id) for n in notices]

    assert await remind(6.9) == []
    told = await remind(7)
    assert {title for title, _ in told} == {"Workflow 'Weekly digest' is still paused"}
    assert {operator for _, operator in told} == {people.ids[login] for login in SUPERVISORS}
    assert len(await remind(13)) == 2  # not again before a week
    for days in (14, 21, 28):
        await remind(days)
    assert len(await remind(29)) == 8  # four reminders to two supervisors
    assert (await wf_api.get(f"/api/v1/workflows/{workflow['id']}")).json()["state"] == "paused"
    told = await remind(35)
    assert told[-1][0] == "Workflow 'Weekly digest' was stopped" and len(told) == 10
    assert (await wf_api.get(f"/api/v1/workflows/{workflow['id']}")).json()["state"] == "stopped"


async def _recorded_leader(runtime: Runtime, pid: int) -> bool:
    """Whether the database names process ``pid`` as the leader within 5 s (it logs first, then records)."""
    for _ in range(50):
        async with runtime.transaction() as session:
            if f":{pid} since" in (await get_meta(session, "scheduler_leader") or ""):
                return True
        await asyncio.sleep(0.1)
    return False


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_one_process_leads_and_another_takes_over_when_it_dies(
    wf_runtime: Runtime, database_url: str, tmp_path: Path
) -> None:
    env = {
        "ENVOI_DATABASE_URL": database_url,
        "ENVOI_DATA_DIR": str(tmp_path),
        "ENVOI_SCHEDULER_TAKEOVER_SECONDS": "0.5",
        "ENVOI_LOG_LEVEL": "info",
    }
    logs = [tmp_path / f"worker{n}.log" for n in (1, 2)]
    workers = [start_envoi(["worker"], env=env, cwd=tmp_path, output=log.open("wb")) for log in logs]
    try:
        for log in logs:
            wait_for_text(log, "worker.started")
        await asyncio.sleep(1.5)  # both tried to lead: exactly one did

        leading = [n for n, log in enumerate(logs) if "workflows.scheduler_leading" in log.read_text()]
        assert len(leading) == 1, [log.read_text() for log in logs]
        leader, standby = workers[leading[0]], workers[1 - leading[0]]
        assert await _recorded_leader(wf_runtime, leader.pid), [log.read_text() for log in logs]

        os.kill(leader.pid, signal.SIGKILL)
        leader.wait(timeout=10)
        wait_for_text(logs[1 - leading[0]], "workflows.scheduler_leading", timeout=10)
        assert await _recorded_leader(wf_runtime, standby.pid)
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
                assert worker.wait(timeout=30) == 0


async def test_a_stored_definition_that_no_longer_holds_suspends_that_workflow_only(
    wf_api: httpx.AsyncClient, wf_runtime: Runtime, people: Operators
) -> None:
    """As after an upgrade that removed an activity kind: the workflow is suspended, its supervisors told, and
    every other workflow still runs."""
    made = [
        (await wf_api.post("/api/v1/workflows", json={"name": name, "definition": WAITING, **extra})).json()["id"]
        for name, extra in (("broken", {"supervisors": "workflow_supervisors"}), ("fine", {}))
    ]
    for workflow_id in made:
        await wf_api.post(f"/api/v1/workflows/{workflow_id}/start")
        await _due_now(wf_runtime, workflow_id)
    broken = {"activities": [{"name": "start", "kind": "gone_kind", "next": []}]}
    async with wf_runtime.transaction() as session:
        await session.execute(update(Workflow).where(Workflow.id == made[0]).values(definition=broken))
    await settle(wf_runtime)

    states = [(await wf_api.get(f"/api/v1/workflows/{w}")).json()["state"] for w in made]
    assert states == ["error", "started"]
    assert await _runs(wf_runtime, made[0]) == [] and len(await _runs(wf_runtime, made[1])) == 1
    async with wf_runtime.transaction() as session:
        bodies = {n.body for n in await session.scalars(select(Notification))}
    [body] = bodies
    assert "its definition is not valid" in body and "unknown activity 'gone_kind'" in body
