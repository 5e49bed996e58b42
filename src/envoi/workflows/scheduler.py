"""The scheduler: starts workflows on their schedules, advances their runs, reminds supervisors of paused
workflows. One process runs it: on PostgreSQL, the one holding an advisory lock on a connection of its own (when
that process dies, its connection closes, the lock is free, and a standby takes it within
``scheduler_takeover_seconds``); on SQLite, ``envoi serve``."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from datetime import datetime, timedelta

import structlog
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from envoi.db.base import utcnow
from envoi.db.engine import create_direct_engine
from envoi.db.meta import set_meta
from envoi.errors import ValidationFailed
from envoi.settings import Settings
from envoi.workflows.definition import parse_definition
from envoi.workflows.engine import active_run, advance_run, new_run, suspend
from envoi.workflows.models import RunStatus, Workflow, WorkflowRun, WorkflowState
from envoi.workflows.service import cancel_runs
from envoi.workflows.supervision import tell_paused, tell_stopped

log = structlog.get_logger(__name__)
LEADER_LOCK = 0x656E_7363  # pg_try_advisory_lock key: "ensc"


def next_occurrence(workflow: Workflow, after: datetime) -> datetime | None:
    step = parse_definition(workflow.definition).scheduler
    return step.settings.schedule.next_after(after) if step else None  # type: ignore[attr-defined]


async def start_due_workflows(session: AsyncSession, settings: Settings, now: datetime) -> list[int]:
    """Opens a run for each started workflow whose time came (an occurrence is skipped while the previous run
    is still going); returns the runs opened. A workflow whose stored definition no longer holds is suspended,
    and the others go on."""
    opened = []
    unscheduled = await session.scalars(
        select(Workflow).where(
            Workflow.state == WorkflowState.STARTED, Workflow.is_template.is_(False), Workflow.next_run_at.is_(None)
        )
    )
    for workflow in unscheduled:  # started without a computed time (shipped workflows): schedule them
        try:
            workflow.next_run_at = next_occurrence(workflow, now)
        except ValidationFailed as error:
            await suspend(session, settings, workflow, None, None, f"its definition is not valid: {error.message}")
    due = await session.scalars(
        select(Workflow).where(
            Workflow.state == WorkflowState.STARTED, Workflow.is_template.is_(False), Workflow.next_run_at <= now
        )
    )
    for workflow in due:
        try:
            workflow.next_run_at = next_occurrence(workflow, now)
            run = new_run(workflow, "schedule", now)
        except ValidationFailed as error:
            await suspend(session, settings, workflow, None, None, f"its definition is not valid: {error.message}")
            continue
        if await active_run(session, workflow.id) is not None:
            log.warning("workflows.occurrence_skipped", workflow=workflow.id, reason="the previous run is still going")
            continue
        session.add(run)
        await session.flush()
        opened.append(run.id)
    return opened


async def remind_paused(session: AsyncSession, settings: Settings, now: datetime) -> int:
    """Reminds the supervisors of workflows paused too long, then stops those reminded enough times."""
    after = timedelta(seconds=settings.workflow_pause_reminder_after_seconds)
    every = timedelta(seconds=settings.workflow_pause_reminder_every_seconds)
    paused = await session.scalars(
        select(Workflow).where(Workflow.state == WorkflowState.PAUSED, Workflow.paused_at <= now - after)
    )
    acted = 0
    for workflow in paused:
        if workflow.last_reminder_at is not None and workflow.last_reminder_at > now - every:
            continue
        assert workflow.paused_at is not None
        days = (now - workflow.paused_at).total_seconds() / 86400
        if workflow.reminders_sent >= settings.workflow_pause_reminders:
            workflow.state, workflow.next_run_at = WorkflowState.STOPPED, None
            await cancel_runs(session, workflow.id, now)
            await tell_stopped(session, settings, workflow, days)
            log.warning("workflows.stopped_after_pause", workflow=workflow.id, reminders=workflow.reminders_sent)
        else:
            workflow.reminders_sent += 1
            workflow.last_reminder_at = now
            await tell_paused(
                session, settings, workflow, days, settings.workflow_pause_reminders - workflow.reminders_sent
            )
        acted += 1
    return acted


class Scheduler:
    def __init__(self, settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]):
        self.settings = settings
        self.sessionmaker = sessionmaker
        self.name = f"{socket.gethostname()}:{os.getpid()}"

    async def tick(self) -> None:
        """One round: open due runs, advance the runs whose time came, remind of paused workflows."""
        now = utcnow()
        async with self.sessionmaker.begin() as session:
            await start_due_workflows(session, self.settings, now)
            await remind_paused(session, self.settings, now)
            runs = list(
                await session.scalars(
                    select(WorkflowRun.id)
                    .where(WorkflowRun.status == RunStatus.RUNNING, WorkflowRun.resume_at <= now)
                    .order_by(WorkflowRun.resume_at)
                )
            )
        for run_id in runs:
            try:
                await advance_run(self.sessionmaker, self.settings, run_id)
            except Exception:  # the database went away mid-run, or a bug: the others still run; this one resumes
                log.exception("workflows.run_failed", run=run_id)

    async def run(self, stop: asyncio.Event) -> None:
        """Tick every ``scheduler_tick_seconds`` while this process leads, until ``stop``."""
        # The lock's connection is not the pool's: held for the whole lead, it would take a pooled connection
        # away from the work, and it must reach the server itself (database_direct_url), never a pooler in
        # transaction mode, where the session holding the lock would be lent to other clients.
        lock_engine = None if self.settings.is_sqlite else create_direct_engine(self.settings, "scheduler")
        try:
            while not stop.is_set():
                try:
                    if lock_engine is None:
                        await self._lead(stop, None)
                    else:
                        await self._lead_while_locked(stop, lock_engine)
                except Exception:
                    log.exception("workflows.scheduler_failed", scheduler=self.name)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.settings.scheduler_takeover_seconds)
        finally:
            if lock_engine is not None:
                await lock_engine.dispose()

    async def _lead_while_locked(self, stop: asyncio.Event, lock_engine: AsyncEngine) -> None:
        """Lead if the leader lock is free; the connection closes at once if it is not."""
        async with lock_engine.connect() as opened:
            connection = await opened.execution_options(isolation_level="AUTOCOMMIT")
            held = await connection.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": LEADER_LOCK})
            if held:
                try:
                    await self._lead(stop, connection)
                finally:
                    with contextlib.suppress(Exception):
                        await connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": LEADER_LOCK})

    async def _lead(self, stop: asyncio.Event, connection: AsyncConnection | None) -> None:
        log.info("workflows.scheduler_leading", scheduler=self.name)
        async with self.sessionmaker.begin() as session:
            await set_meta(session, "scheduler_leader", f"{self.name} since {utcnow().isoformat(timespec='seconds')}")
        while not stop.is_set():
            if connection is not None:  # the lock lives with this connection: if it died, so did our lead
                await connection.execute(text("SELECT 1"))
            try:
                await self.tick()
            except Exception:
                log.exception("workflows.tick_failed", scheduler=self.name)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.settings.scheduler_tick_seconds)
