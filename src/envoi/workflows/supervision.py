"""Telling a workflow's supervisors: it is suspended in error, it has been paused too long, it was stopped.
A workflow without supervisors tells nobody (the factory template has none)."""

from __future__ import annotations

from urllib.parse import quote

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from envoi.errors import NotFound
from envoi.notifications.email import EmailCopy
from envoi.notifications.objects import ObjectRef, register_object
from envoi.notifications.service import Category, Recipients, notify
from envoi.settings import Settings
from envoi.workflows.models import Workflow

log = structlog.get_logger(__name__)

register_object("workflow", link=lambda object_id: f"/console/workflows/{quote(object_id)}")


async def _tell(session: AsyncSession, settings: Settings, workflow: Workflow, title: str, body: str) -> int:
    if not workflow.supervisors:
        return 0
    try:
        async with session.begin_nested():
            sent = await notify(
                session,
                Recipients(groups=[workflow.supervisors]),
                category=Category.ACTION_REQUIRED,
                title=title,
                body=body,
                about=ObjectRef("workflow", str(workflow.id)),
                email=EmailCopy.of(settings),
            )
    except NotFound:  # the group was deleted since: the workflow still stops, nobody is left to tell
        log.warning("workflows.supervisors_missing", workflow=workflow.id, group=workflow.supervisors)
        return 0
    return len(sent)


async def tell_suspended(
    session: AsyncSession, settings: Settings, workflow: Workflow, activity: str | None, reason: str
) -> int:
    """``activity`` None: the workflow could not run at all (``reason`` says why)."""
    what = f"its activity '{activity}' failed ({reason})" if activity else reason
    return await _tell(
        session,
        settings,
        workflow,
        f"Workflow '{workflow.label}' has an error",
        f"The workflow '{workflow.label}' ({workflow.name}, id {workflow.id}) is suspended: {what}. It needs "
        "manual intervention: fix the cause, then resume or restart it in the console.",
    )


async def tell_paused(session: AsyncSession, settings: Settings, workflow: Workflow, days: float, left: int) -> int:
    return await _tell(
        session,
        settings,
        workflow,
        f"Workflow '{workflow.label}' is still paused",
        f"The workflow '{workflow.label}' ({workflow.name}, id {workflow.id}) has been paused for {days:.0f} days. "
        f"Resume or stop it; after {left} more reminder{'s' if left != 1 else ''} it will be stopped.",
    )


async def tell_stopped(session: AsyncSession, settings: Settings, workflow: Workflow, days: float) -> int:
    return await _tell(
        session,
        settings,
        workflow,
        f"Workflow '{workflow.label}' was stopped",
        f"The workflow '{workflow.label}' ({workflow.name}, id {workflow.id}) was paused for {days:.0f} days "
        "without anyone resuming it, so Envoi stopped it. Start it again in the console when it is needed.",
    )
