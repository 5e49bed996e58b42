"""Workflows: the list with the workflow templates, a new workflow (or template) from a template, a workflow's
page (its state and the operator's actions, its graph drawn, its properties, its definition as JSON, its recent
runs) and a run's steps. A workflow template's page is the same page without state, actions or runs."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Path, Request
from fastapi.responses import HTMLResponse
from starlette.responses import Response

from envoi.access.audit import audit
from envoi.access.groups import list_groups
from envoi.console.forms import FieldErrors, json_field, read_form, service_errors
from envoi.console.rendering import render
from envoi.console.routing import console_router, runtime_of, see_other
from envoi.console.session import CanManageWorkflows, CanView, Viewer
from envoi.console.workflow_graph import workflow_graph
from envoi.errors import Conflict, EnvoiError, NotFound, ValidationFailed
from envoi.workflows import service
from envoi.workflows.activities import ACTIVITIES
from envoi.workflows.models import RunStatus, Workflow, WorkflowState

router = console_router()
WorkflowId = Annotated[int, Path(ge=1, le=2**62)]
Action = Literal["start", "run", "pause", "resume", "restart", "stop"]
NEW_FIELDS = ("name", "label", "template")
PROPERTY_FIELDS = ("label", "supervisors", "on_error", "error_threshold")
RECENT_RUNS = 20
DONE = {
    "created": "Workflow created. It is stopped: check its properties and definition, then start it or run it now.",
    "created_template": "Workflow template created. New workflows can be made from it.",
    "saved": "Properties saved.",
    "definition": "Definition saved. Runs that start from now on follow it; a run already going keeps its own.",
    "start": "Started: it runs on its schedule from now on (without a scheduler activity, only when you run it).",
    "run": "Run started: the scheduler picks it up within a second or two. Reload to follow its steps below.",
    "pause": "Paused: no run starts and the current one waits until the workflow is resumed.",
    "resume": "Resumed: it runs on its schedule again; a run suspended by an error retries the activity that failed.",
    "restart": "Restarted: a new run started now, and any run still going was dropped.",
    "stop": "Stopped: it no longer runs on its schedule, and any run still going was dropped.",
    "deleted": "Deleted.",
}
_AUDITED = {"start": "started", "run": "ran", "pause": "paused", "resume": "resumed", "restart": "restarted",
            "stop": "stopped"}  # fmt: skip


def _setting(name: str, info: Any) -> str:
    if info.is_required():
        return f"{name} (required)"
    return f"{name} = {json.dumps(info.get_default(call_default_factory=True), default=str)}"


# What each kind of activity does and takes, for whoever writes a definition by hand.
KINDS = [
    {
        "kind": activity.kind,
        "description": activity.description,
        "outcomes": activity.outcomes,
        "settings": [_setting(name, info) for name, info in activity.settings_model.model_fields.items()],
    }
    for activity in ACTIVITIES.values()
]


def next_run(workflow: Workflow) -> datetime | None:
    """When it runs next (None when not scheduled, or when its stored definition no longer validates)."""
    try:
        return service.upcoming_run(workflow)
    except EnvoiError:
        return None


def base_path(workflow: Workflow) -> str:
    return f"/console/{'workflow-templates' if workflow.is_template else 'workflows'}/{workflow.id}"


@router.get("/workflows")
async def workflows(request: Request, _viewer: CanView, done: str = "") -> HTMLResponse:
    async with runtime_of(request).transaction() as session:
        found = await service.list_workflows(session)
        templates = await service.list_workflows(session, templates=True)
        groups = {group.name: group.label for group in await list_groups(session)}
    context = {
        "workflows": found,
        "next_runs": {workflow.id: next_run(workflow) for workflow in found},
        "templates": templates,
        "groups": groups,
        "flash": DONE.get(done),
    }
    return render(request, "workflows.html", context)


async def _new_page(
    request: Request, values: dict[str, str], errors: FieldErrors | None = None, status: int = 200
) -> HTMLResponse:
    async with runtime_of(request).transaction() as session:
        templates = await service.list_workflows(session, templates=True)
    options = [(str(t.id), f"{t.label} ({t.name}{', factory' if t.factory else ''})") for t in templates]
    if not values.get("template"):
        values["template"] = next((str(t.id) for t in templates if t.name == service.FACTORY_TEMPLATE), "")
    context = {"values": values, "errors": errors or {}, "template_options": options}
    return render(request, "workflow_new.html", context, status=status)


@router.get("/workflows/new")
async def new_workflow(
    request: Request, _viewer: CanManageWorkflows, template: str = "", kind: str = "workflow"
) -> HTMLResponse:
    values = {"template": template, "is_template": "yes" if kind == "template" else ""}
    return await _new_page(request, values)


@router.post("/workflows/new")
async def create_workflow(request: Request, viewer: CanManageWorkflows) -> Response:
    form = await read_form(request)
    name, label, chosen = form.text("name"), form.text("label"), form.text("template")
    is_template = form.text("is_template") == "yes"
    if chosen and not (chosen.isdecimal() and int(chosen) <= 2**62):
        return await _new_page(request, form.values(), {"template": "Choose a template in the list."}, status=422)
    try:
        async with runtime_of(request).transaction() as session:
            made = await service.create_workflow(
                session, name=name, template_id=int(chosen) if chosen else None, actor=viewer.principal.actor,
                fields={"label": label} if label else {}, is_template=is_template,
            )  # fmt: skip
            details = {"name": made.name, "template": made.template_id}
            audit(session, viewer.principal, "created", "workflow_template" if is_template else "workflow", made.id,
                  details)  # fmt: skip
    except EnvoiError as error:
        if isinstance(error, NotFound):  # the factory template is gone: nothing the form can fix
            raise
        return await _new_page(request, form.values(), service_errors(error, NEW_FIELDS), status=422)
    return see_other(f"{base_path(made)}?done={'created_template' if is_template else 'created'}")


def _properties(workflow: Workflow) -> dict[str, str]:
    return {
        "label": workflow.label,
        "supervisors": workflow.supervisors or "",
        "on_error": workflow.on_error,
        "error_threshold": str(workflow.error_threshold),
    }


def _kind_of(definition: dict[str, Any], activity: str) -> str | None:
    found = (item.get("kind") for item in definition.get("activities", []) if item.get("name") == activity)
    return next(found, None)


async def workflow_page(
    request: Request,
    workflow_id: int,
    *,
    template: bool = False,
    values: dict[str, str] | None = None,
    definition: str | None = None,
    errors: FieldErrors | None = None,
    problems: list[dict[str, str]] | None = None,
    flash: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    """A workflow's (or template's) page; after a refused change, with what was typed and what is wrong."""
    async with runtime_of(request).transaction() as session:
        workflow = await service.find_workflow(session, workflow_id, template=template)
        runs = [] if template else await service.list_runs(session, workflow_id, limit=RECENT_RUNS)
        groups = await list_groups(session)
        source = await session.get(Workflow, workflow.template_id) if workflow.template_id else None
    suspended = next((run for run in runs if run.status == RunStatus.SUSPENDED), None)
    active = next((run for run in runs if run.status in (RunStatus.RUNNING, RunStatus.SUSPENDED)), None)
    failed = suspended.failed_activity if suspended and workflow.state == WorkflowState.ERROR else None
    waiting = [item.get("activity", "") for item in active.pending] if active else []
    stored = json.dumps(workflow.definition, indent=2, ensure_ascii=False)
    group_options = [("", "Nobody: no one is told")] + [(g.name, f"{g.label} ({g.name})") for g in groups]
    if workflow.supervisors and workflow.supervisors not in {g.name for g in groups}:
        group_options.append((workflow.supervisors, f"{workflow.supervisors} (this group no longer exists)"))
    context = {
        "workflow": workflow,
        "base": base_path(workflow),
        "editable": not (workflow.factory and workflow.is_template),
        "runs": runs,
        "next_run": None if workflow.is_template else next_run(workflow),
        "suspended": suspended,
        "failed_kind": _kind_of(suspended.definition, failed) if suspended and failed else None,
        "graph": workflow_graph(
            workflow.definition, failed=failed, waiting=waiting, label=f"The activities of {workflow.label}"
        ),
        "group_options": group_options,
        "group_labels": {g.name: g.label for g in groups},
        "source": source,
        "values": values if values is not None else _properties(workflow),
        "definition": stored if definition is None else definition,  # after a refused save: as typed
        "errors": errors or {},
        "problems": problems or [],
        "kinds": KINDS,
        "flash": flash,
    }
    return render(request, "workflow.html", context, status=status)


@router.get("/workflows/{workflow_id}")
async def workflow_detail(request: Request, workflow_id: WorkflowId, _viewer: CanView, done: str = "") -> HTMLResponse:
    return await workflow_page(request, workflow_id, flash=DONE.get(done))


async def save_properties(request: Request, workflow_id: int, viewer: Viewer, *, template: bool) -> Response:
    form = await read_form(request)
    threshold = form.text("error_threshold")
    errors: FieldErrors = {}
    if not threshold.isdecimal() or int(threshold) > 1000:
        errors["error_threshold"] = "Write a whole number from 0 to 1000 (0: errors never suspend it)."
    if not errors:
        changes: dict[str, Any] = {
            "label": form.text("label"),
            "supervisors": form.text("supervisors") or None,
            "on_error": form.text("on_error"),
            "error_threshold": int(threshold),
        }
        try:
            async with runtime_of(request).transaction() as session:
                workflow = await service.find_workflow(session, workflow_id, template=template)
                await service.update_workflow(session, workflow, changes)
                kind = "workflow_template" if template else "workflow"
                audit(session, viewer.principal, "updated", kind, workflow_id, {"fields": sorted(changes)})
            return see_other(f"{base_path(workflow)}?done=saved")
        except (ValidationFailed, Conflict) as error:
            errors = service_errors(error, PROPERTY_FIELDS)
    errors.setdefault("", "Nothing was saved: correct what is marked below.")
    values = {name: form.text(name) for name in PROPERTY_FIELDS}
    return await workflow_page(request, workflow_id, template=template, values=values, errors=errors, status=422)


async def save_definition(request: Request, workflow_id: int, viewer: Viewer, *, template: bool) -> Response:
    form = await read_form(request)
    errors: FieldErrors = {}
    problems: list[dict[str, str]] = []
    document = json_field(form, "definition", errors)
    if document is None and not errors:
        errors["definition"] = 'Write the definition: a JSON object such as {"activities": [...]}.'
    if not errors:
        try:
            async with runtime_of(request).transaction() as session:
                workflow = await service.find_workflow(session, workflow_id, template=template)
                await service.update_workflow(session, workflow, {"definition": document})
                kind = "workflow_template" if template else "workflow"
                audit(session, viewer.principal, "updated", kind, workflow_id, {"fields": ["definition"]})
            return see_other(f"{base_path(workflow)}?done=definition")
        except ValidationFailed as error:
            problems = error.details.get("errors") or [{"field": error.field or "definition", "message": error.message}]
        except Conflict as error:
            errors[""] = error.message
    return await workflow_page(
        request, workflow_id, template=template, definition=form.raw("definition"), errors=errors, problems=problems,
        status=409 if "" in errors else 422,
    )  # fmt: skip


async def delete(request: Request, workflow_id: int, viewer: Viewer, *, template: bool) -> Response:
    try:
        async with runtime_of(request).transaction() as session:
            await service.delete_workflow(session, await service.find_workflow(session, workflow_id, template=template))
            audit(session, viewer.principal, "deleted", "workflow_template" if template else "workflow", workflow_id)
    except Conflict as conflict:
        return await workflow_page(request, workflow_id, template=template, errors={"": conflict.message}, status=409)
    return see_other("/console/workflows?done=deleted")


@router.post("/workflows/{workflow_id}/properties")
async def workflow_properties(request: Request, workflow_id: WorkflowId, viewer: CanManageWorkflows) -> Response:
    return await save_properties(request, workflow_id, viewer, template=False)


@router.post("/workflows/{workflow_id}/definition")
async def workflow_definition(request: Request, workflow_id: WorkflowId, viewer: CanManageWorkflows) -> Response:
    return await save_definition(request, workflow_id, viewer, template=False)


@router.post("/workflows/{workflow_id}/delete")
async def delete_workflow(request: Request, workflow_id: WorkflowId, viewer: CanManageWorkflows) -> Response:
    return await delete(request, workflow_id, viewer, template=False)


@router.post("/workflows/{workflow_id}/{action}")
async def change_state(
    request: Request, workflow_id: WorkflowId, action: Action, viewer: CanManageWorkflows
) -> Response:
    """Start, run now, pause, resume, restart or stop; a refusal (the state does not allow it) shows on the page."""
    try:
        async with runtime_of(request).transaction() as session:
            workflow = await service.find_workflow(session, workflow_id)
            if action == "run":
                details = {"run": (await service.run_now(session, workflow)).id}
            elif action == "restart":
                details = {"run": (await service.restart_workflow(session, workflow)).id}
            else:
                changes = {"start": service.start_workflow, "pause": service.pause_workflow,
                           "resume": service.resume_workflow, "stop": service.stop_workflow}  # fmt: skip
                await changes[action](session, workflow)
                details = {}
            audit(session, viewer.principal, _AUDITED[action], "workflow", workflow_id, details)
    except EnvoiError as refused:  # the state does not allow it, or the stored definition no longer validates
        if isinstance(refused, NotFound):
            raise
        message = f"Nothing was done: {refused.message}."
        return await workflow_page(request, workflow_id, errors={"": message}, status=refused.status_code)
    return see_other(f"/console/workflows/{workflow_id}?done={action}")


@router.get("/workflows/{workflow_id}/runs/{run_id}")
async def run_detail(request: Request, workflow_id: WorkflowId, run_id: WorkflowId, _viewer: CanView) -> HTMLResponse:
    async with runtime_of(request).transaction() as session:
        workflow = await service.find_workflow(session, workflow_id)
        run, steps = await service.find_run(session, workflow_id, run_id)
    waiting = [item.get("activity", "") for item in run.pending] if run.status in ("running", "suspended") else []
    graph = workflow_graph(
        run.definition, failed=run.failed_activity if run.status == RunStatus.SUSPENDED else None, waiting=waiting,
        label=f"The activities of run {run.id}",
    )  # fmt: skip
    return render(request, "workflow_run.html", {"workflow": workflow, "run": run, "steps": steps, "graph": graph})
