"""Running a workflow: a run holds the activities still to do (``pending``, each with its input and the time
it is due); each activity runs in its own transaction with the record of its step, so a run resumes where it
was after a wait or a crash. Error management: suspend at the first error, or ignore errors (skipping the
failed branch) until ``error_threshold`` in a row, then suspend and tell the supervisors."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from envoi.db.base import utcnow
from envoi.errors import ValidationFailed
from envoi.settings import Settings
from envoi.workflows.activities.base import ActivityFailed, Done, RunContext
from envoi.workflows.definition import Definition, parse_definition
from envoi.workflows.models import (
    OnError,
    RunStatus,
    StepStatus,
    Workflow,
    WorkflowRun,
    WorkflowState,
    WorkflowStep,
)
from envoi.workflows.supervision import tell_suspended

log = structlog.get_logger(__name__)
_RUNNABLE = (WorkflowState.STARTED, WorkflowState.STOPPED)  # stopped: a manual "run now"


def new_run(workflow: Workflow, trigger: str, now: datetime) -> WorkflowRun:
    definition = parse_definition(workflow.definition)
    return WorkflowRun(
        workflow_id=workflow.id,
        status=RunStatus.RUNNING,
        trigger=trigger,
        definition=workflow.definition,
        pending=[{"activity": name, "input": None, "due": None} for name in definition.roots],
        resume_at=now,
        errors=0,
        started_at=now,
    )


async def active_run(session: AsyncSession, workflow_id: int) -> WorkflowRun | None:
    """The run still going (or suspended) of a workflow: there is at most one."""
    return await session.scalar(
        select(WorkflowRun).where(
            WorkflowRun.workflow_id == workflow_id,
            WorkflowRun.status.in_([RunStatus.RUNNING, RunStatus.SUSPENDED]),
        )
    )


def _due(item: dict[str, Any], now: datetime) -> bool:
    return item.get("due") is None or datetime.fromisoformat(item["due"]) <= now


def _next_due(pending: list[dict[str, Any]], now: datetime) -> datetime | None:
    if not pending:
        return None
    dues = [datetime.fromisoformat(item["due"]) if item.get("due") else now for item in pending]
    return min(dues)


async def advance_run(sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, run_id: int) -> str:
    """Do the run's due activities one transaction each, until it waits, ends or is suspended; returns its
    status."""
    while True:
        async with sessionmaker.begin() as session:
            status = await _advance_one(session, settings, run_id, utcnow())
        if status is not None:
            return status


async def _advance_one(session: AsyncSession, settings: Settings, run_id: int, now: datetime) -> str | None:
    """One activity of the run, if one is due; the run's status when there is nothing more to do now."""
    run = await session.get(WorkflowRun, run_id, with_for_update=True)
    if run is None:
        return RunStatus.CANCELLED.value
    workflow = await session.get(Workflow, run.workflow_id, with_for_update=True)
    if run.status != RunStatus.RUNNING or workflow is None or workflow.state not in _RUNNABLE:
        return run.status
    pending = list(run.pending)
    item = next((p for p in pending if _due(p, now)), None)
    if item is None:
        run.resume_at = _next_due(pending, now)
        return run.status
    try:
        definition = parse_definition(run.definition)
    except ValidationFailed as error:  # stored before an upgrade changed the rules: a person must look at it
        await suspend(session, settings, workflow, run, None, f"its definition is no longer valid: {error.message}")
        return None
    pending.remove(item)
    outcome = await _run_activity(session, settings, workflow, run, definition, item, now)
    if isinstance(outcome, Done):
        step = definition.steps[item["activity"]]
        due = outcome.not_before.isoformat() if outcome.not_before else None
        pending += [
            {"activity": name, "input": outcome.output, "due": due}
            for name in step.transitions.get(outcome.outcome, ())
        ]
    elif await _suspends(session, settings, workflow, run, item["activity"], outcome):
        pending.insert(0, item)  # resuming retries the failed activity
        run.pending = pending
        return None
    run.pending = pending
    run.resume_at = _next_due(pending, now)
    if not pending:
        run.status = RunStatus.SUCCEEDED if run.errors == 0 else RunStatus.FAILED
        run.ended_at = utcnow()
        if run.errors == 0:
            workflow.consecutive_errors = 0
        log.info("workflows.run_ended", workflow=workflow.id, run=run.id, status=run.status, errors=run.errors)
    return None


async def _run_activity(
    session: AsyncSession,
    settings: Settings,
    workflow: Workflow,
    run: WorkflowRun,
    definition: Definition,
    item: dict[str, Any],
    now: datetime,
) -> Done | str:
    """Runs one activity and records its step; returns what it did, or why it failed."""
    step = definition.steps[item["activity"]]
    record = WorkflowStep(run_id=run.id, activity=step.name, kind=step.kind, status=StepStatus.RUNNING, started_at=now)
    context = RunContext(session, settings, workflow.id, workflow.name, run.id, now)
    outcome: Done | str
    try:
        async with session.begin_nested():  # a failed activity's writes are undone, its record kept
            outcome = await step.activity.run(step.settings, item.get("input"), context)
    except ActivityFailed as failure:
        outcome = failure.reason
    except Exception as error:  # a bug or an outage: the workflow's error management still applies
        log.exception("workflows.activity_crashed", workflow=workflow.id, run=run.id, activity=step.name)
        outcome = f"{type(error).__name__}: {error}"
    record.ended_at = utcnow()
    record.logs = context.logs
    if isinstance(outcome, Done):
        record.status, record.count = StepStatus.DONE, outcome.count
    else:
        record.status, record.error = StepStatus.FAILED, outcome[:2000]
    session.add(record)
    return outcome


async def _suspends(
    session: AsyncSession, settings: Settings, workflow: Workflow, run: WorkflowRun, activity: str, reason: str
) -> bool:
    """Applies the workflow's error management to a failed activity; True when it suspends the workflow."""
    run.errors += 1
    workflow.consecutive_errors += 1
    threshold = workflow.error_threshold
    if workflow.on_error == OnError.IGNORE and (threshold <= 0 or workflow.consecutive_errors < threshold):
        log.warning("workflows.error_ignored", workflow=workflow.id, run=run.id, activity=activity, reason=reason)
        return False
    await suspend(session, settings, workflow, run, activity, reason)
    return True


async def suspend(
    session: AsyncSession,
    settings: Settings,
    workflow: Workflow,
    run: WorkflowRun | None,
    activity: str | None,
    reason: str,
) -> None:
    """The workflow in error, its run (if any) waiting at ``activity``, its supervisors told."""
    if run is not None:
        run.status = RunStatus.SUSPENDED
        run.failed_activity, run.error = activity, reason[:2000]
        run.resume_at = None
    workflow.state, workflow.next_run_at = WorkflowState.ERROR, None
    told = await tell_suspended(session, settings, workflow, activity, reason)
    log.warning("workflows.suspended", workflow=workflow.id, run=run.id if run else None, activity=activity, told=told)
