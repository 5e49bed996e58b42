"""Workflows and workflow templates: create (a workflow always from a template), change, and the operator's
actions (start, run now, pause, resume, restart, stop). Services never commit."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from envoi.access.groups import find_group
from envoi.db.base import utcnow
from envoi.errors import Conflict, NotFound, ValidationFailed
from envoi.workflows.definition import parse_definition
from envoi.workflows.engine import active_run, new_run
from envoi.workflows.models import OnError, RunStatus, Workflow, WorkflowRun, WorkflowState, WorkflowStep

FACTORY_TEMPLATE = "new_workflow"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,99}$")
_EDITABLE = ("label", "definition", "supervisors", "on_error", "error_threshold")


async def find_workflow(session: AsyncSession, workflow_id: int, *, template: bool = False) -> Workflow:
    workflow = await session.get(Workflow, workflow_id)
    if workflow is None or workflow.is_template != template:
        raise NotFound(f"no workflow {'template ' if template else ''}has the id {workflow_id}")
    return workflow


async def list_workflows(session: AsyncSession, *, templates: bool = False) -> list[Workflow]:
    rows = await session.scalars(select(Workflow).where(Workflow.is_template.is_(templates)).order_by(Workflow.id))
    return list(rows)


async def _checked(session: AsyncSession, changes: dict[str, Any]) -> dict[str, Any]:
    """The changes, each checked; raises ValidationFailed naming the field."""
    if "label" in changes:
        label = (changes["label"] or "").strip()
        if not label or len(label) > 200:
            raise ValidationFailed("a label has 1 to 200 characters", field="label")
        changes["label"] = label
    if "definition" in changes:
        parse_definition(changes["definition"])
    if changes.get("supervisors"):
        try:
            await find_group(session, changes["supervisors"])
        except NotFound:
            raise ValidationFailed(
                f"no security group is named {changes['supervisors']!r}", field="supervisors"
            ) from None
    elif "supervisors" in changes:
        changes["supervisors"] = None
    if "on_error" in changes:
        try:
            changes["on_error"] = OnError(changes["on_error"]).value
        except ValueError:
            raise ValidationFailed("on_error is suspend or ignore", field="on_error") from None
    threshold = changes.get("error_threshold", 0)
    if not isinstance(threshold, int) or isinstance(threshold, bool) or not 0 <= threshold <= 1000:
        raise ValidationFailed("error_threshold is 0 (never suspend) to 1000", field="error_threshold")
    return changes


async def create_workflow(
    session: AsyncSession,
    *,
    name: str,
    template_id: int | None,
    fields: dict[str, Any],
    actor: str,
    is_template: bool = False,
) -> Workflow:
    """A workflow (or template) copied from a template (the factory one by default), with ``fields`` changed."""
    if not _NAME.match(name):
        raise ValidationFailed("a name is 1 to 100 lowercase letters, digits, - or _", field="name")
    taken = await session.scalar(
        select(Workflow.id).where(Workflow.is_template.is_(is_template), Workflow.name == name)
    )
    if taken is not None:
        raise Conflict(f"a workflow {'template ' if is_template else ''}named {name!r} exists", field="name")
    if template_id is None:
        source = await session.scalar(select(Workflow).where(Workflow.is_template, Workflow.name == FACTORY_TEMPLATE))
        if source is None:
            raise NotFound("the factory workflow template is missing: run envoi migrate")
    else:
        try:
            source = await find_workflow(session, template_id, template=True)
        except NotFound as error:
            raise ValidationFailed(error.message, field="template") from None
    base = {
        "label": source.label,
        "definition": source.definition,
        "supervisors": source.supervisors,
        "on_error": source.on_error,
        "error_threshold": source.error_threshold,
    }
    values = base | await _checked(session, {k: v for k, v in fields.items() if k in _EDITABLE})
    workflow = Workflow(
        name=name,
        is_template=is_template,
        template_id=source.id,
        created_by=actor,
        state=WorkflowState.STOPPED,
        consecutive_errors=0,
        reminders_sent=0,
        factory=False,
        technical=False,
        **values,
    )
    session.add(workflow)
    await session.flush()
    return workflow


async def update_workflow(
    session: AsyncSession, workflow: Workflow, changes: dict[str, Any], now: datetime | None = None
) -> Workflow:
    if workflow.factory and workflow.is_template:
        raise Conflict("the factory template does not change: create your own template from it", field="id")
    changes = await _checked(session, {k: v for k, v in changes.items() if k in _EDITABLE})
    for key, value in changes.items():
        setattr(workflow, key, value)
    if "definition" in changes and workflow.state == WorkflowState.STARTED:
        workflow.next_run_at = _next(workflow, now or utcnow())
    workflow.updated_at = utcnow()
    return workflow


def upcoming_run(workflow: Workflow, now: datetime | None = None) -> datetime | None:
    """When a workflow runs next: its stored time, or for a started one the scheduler has not yet seen (Envoi's
    own, right after the migration) the next time its schedule gives."""
    if workflow.state != WorkflowState.STARTED or workflow.is_template:
        return None
    return workflow.next_run_at or _next(workflow, now or utcnow())


def _next(workflow: Workflow, now: datetime) -> datetime | None:
    step = parse_definition(workflow.definition).scheduler
    return step.settings.schedule.next_after(now) if step else None  # type: ignore[attr-defined]


async def cancel_runs(session: AsyncSession, workflow_id: int, now: datetime) -> int:
    result = await session.execute(
        update(WorkflowRun)
        .where(WorkflowRun.workflow_id == workflow_id, WorkflowRun.status.in_([RunStatus.RUNNING, RunStatus.SUSPENDED]))
        .values(status=RunStatus.CANCELLED, ended_at=now, resume_at=None)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def _state(workflow: Workflow) -> str:
    return "in error" if workflow.state == WorkflowState.ERROR else workflow.state


def _not_template(workflow: Workflow) -> None:
    if workflow.is_template:
        raise Conflict("a workflow template never runs: create a workflow from it", field="id")


async def start_workflow(session: AsyncSession, workflow: Workflow, now: datetime | None = None) -> Workflow:
    """Scheduled from now on (a workflow without scheduler only runs when asked)."""
    _not_template(workflow)
    if workflow.state in (WorkflowState.PAUSED, WorkflowState.ERROR):
        raise Conflict(f"the workflow is {_state(workflow)}: resume or restart it", field="state")
    workflow.state, workflow.next_run_at = WorkflowState.STARTED, _next(workflow, now or utcnow())
    return workflow


async def run_now(session: AsyncSession, workflow: Workflow, now: datetime | None = None) -> WorkflowRun:
    _not_template(workflow)
    if workflow.state in (WorkflowState.PAUSED, WorkflowState.ERROR):
        raise Conflict(f"the workflow is {_state(workflow)}: resume or restart it first", field="state")
    if await active_run(session, workflow.id) is not None:
        raise Conflict("the workflow is already running", field="state")
    run = new_run(workflow, "manual", now or utcnow())
    session.add(run)
    await session.flush()
    return run


async def pause_workflow(session: AsyncSession, workflow: Workflow, now: datetime | None = None) -> Workflow:
    _not_template(workflow)
    if workflow.state != WorkflowState.STARTED:
        raise Conflict(f"only a started workflow pauses; this one is {_state(workflow)}", field="state")
    workflow.state, workflow.paused_at = WorkflowState.PAUSED, now or utcnow()
    workflow.reminders_sent, workflow.last_reminder_at = 0, None
    return workflow


async def resume_workflow(session: AsyncSession, workflow: Workflow, now: datetime | None = None) -> Workflow:
    """A paused workflow goes on; one in error retries the activity that failed, its error count reset."""
    _not_template(workflow)
    now = now or utcnow()
    if workflow.state not in (WorkflowState.PAUSED, WorkflowState.ERROR):
        raise Conflict(f"only a paused workflow or one in error resumes; this one is {_state(workflow)}", field="state")
    if workflow.state == WorkflowState.ERROR:
        workflow.consecutive_errors = 0
        run = await active_run(session, workflow.id)
        if run is not None and run.status == RunStatus.SUSPENDED:
            # A person dealt with the error that suspended it: the run ends succeeded if nothing else fails
            run.status, run.resume_at, run.errors = RunStatus.RUNNING, now, max(0, run.errors - 1)
    workflow.state, workflow.paused_at = WorkflowState.STARTED, None
    workflow.next_run_at = _next(workflow, now)
    return workflow


async def restart_workflow(session: AsyncSession, workflow: Workflow, now: datetime | None = None) -> WorkflowRun:
    """Drops the current run and starts a new one now, scheduled again afterwards."""
    _not_template(workflow)
    now = now or utcnow()
    await cancel_runs(session, workflow.id, now)
    workflow.state, workflow.paused_at, workflow.consecutive_errors = WorkflowState.STARTED, None, 0
    workflow.next_run_at = _next(workflow, now)
    run = new_run(workflow, "restart", now)
    session.add(run)
    await session.flush()
    return run


async def stop_workflow(session: AsyncSession, workflow: Workflow, now: datetime | None = None) -> Workflow:
    _not_template(workflow)
    now = now or utcnow()
    await cancel_runs(session, workflow.id, now)
    workflow.state, workflow.next_run_at, workflow.paused_at = WorkflowState.STOPPED, None, None
    return workflow


async def delete_workflow(session: AsyncSession, workflow: Workflow) -> None:
    if workflow.factory or workflow.technical:
        what = "stop it instead" if not workflow.is_template else "it stays, for new workflows"
        raise Conflict(f"Envoi's own workflows and templates are not deleted: {what}", field="id")
    if not workflow.is_template and workflow.state != WorkflowState.STOPPED:
        raise Conflict(f"stop the workflow before deleting it; it is {_state(workflow)}", field="state")
    await session.delete(workflow)


async def list_runs(session: AsyncSession, workflow_id: int, *, limit: int = 50) -> list[WorkflowRun]:
    rows = await session.scalars(
        select(WorkflowRun).where(WorkflowRun.workflow_id == workflow_id).order_by(WorkflowRun.id.desc()).limit(limit)
    )
    return list(rows)


async def find_run(session: AsyncSession, workflow_id: int, run_id: int) -> tuple[WorkflowRun, list[WorkflowStep]]:
    run = await session.get(WorkflowRun, run_id)
    if run is None or run.workflow_id != workflow_id:
        raise NotFound(f"workflow {workflow_id} has no run {run_id}")
    steps = await session.scalars(select(WorkflowStep).where(WorkflowStep.run_id == run_id).order_by(WorkflowStep.id))
    return run, list(steps)
