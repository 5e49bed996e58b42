"""REST: workflows (``/api/v1/workflows``), their runs, workflow templates and the activity kinds."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path

from envoi.access.api import CanManageWorkflows, CanView, RuntimeDep
from envoi.access.audit import audit
from envoi.workflows import service
from envoi.workflows.activities import ACTIVITIES
from envoi.workflows.schemas import ActivityKindOut, RunOut, WorkflowFields, WorkflowIn, WorkflowOut

router = APIRouter(prefix="/api/v1", tags=["workflows"])
Id = Annotated[int, Path(ge=1, le=2**62)]
Action = Literal["start", "pause", "resume", "stop"]
_DONE = {"start": "started", "pause": "paused", "resume": "resumed", "stop": "stopped"}


@router.get("/workflow-activities", response_model=list[ActivityKindOut])
async def list_activity_kinds(_who: CanView) -> list[ActivityKindOut]:
    return [
        ActivityKindOut(
            kind=a.kind,
            description=a.description,
            outcomes=list(a.outcomes),
            settings_schema=a.settings_model.model_json_schema(),
        )
        for a in ACTIVITIES.values()
    ]


def _fields(body: WorkflowFields) -> dict[str, object]:
    return body.model_dump(exclude_unset=True, exclude={"name", "template"})


@router.get("/workflows", response_model=list[WorkflowOut])
async def list_workflows(runtime: RuntimeDep, _who: CanView) -> list[WorkflowOut]:
    async with runtime.transaction() as session:
        return [WorkflowOut.of(w) for w in await service.list_workflows(session)]


@router.post("/workflows", response_model=WorkflowOut, status_code=201)
async def create_workflow(body: WorkflowIn, runtime: RuntimeDep, who: CanManageWorkflows) -> WorkflowOut:
    """A new workflow (stopped), copied from a template: the factory one unless ``template`` names another."""
    async with runtime.transaction() as session:
        workflow = await service.create_workflow(
            session, name=body.name, template_id=body.template, fields=_fields(body), actor=who.actor
        )
        audit(
            session, who, "created", "workflow", workflow.id, {"name": workflow.name, "template": workflow.template_id}
        )
        return WorkflowOut.of(workflow)


@router.get("/workflows/{workflow_id}", response_model=WorkflowOut)
async def read_workflow(workflow_id: Id, runtime: RuntimeDep, _who: CanView) -> WorkflowOut:
    async with runtime.transaction() as session:
        return WorkflowOut.of(await service.find_workflow(session, workflow_id))


@router.patch("/workflows/{workflow_id}", response_model=WorkflowOut)
async def change_workflow(
    workflow_id: Id, body: WorkflowFields, runtime: RuntimeDep, who: CanManageWorkflows
) -> WorkflowOut:
    async with runtime.transaction() as session:
        workflow = await service.update_workflow(
            session, await service.find_workflow(session, workflow_id), _fields(body)
        )
        audit(session, who, "updated", "workflow", workflow_id, {"fields": sorted(_fields(body))})
        return WorkflowOut.of(workflow)


@router.delete("/workflows/{workflow_id}", status_code=204)
async def delete_workflow(workflow_id: Id, runtime: RuntimeDep, who: CanManageWorkflows) -> None:
    async with runtime.transaction() as session:
        await service.delete_workflow(session, await service.find_workflow(session, workflow_id))
        audit(session, who, "deleted", "workflow", workflow_id)


@router.post("/workflows/{workflow_id}/runs", response_model=RunOut, status_code=201)
async def run_workflow(workflow_id: Id, runtime: RuntimeDep, who: CanManageWorkflows, restart: bool = False) -> RunOut:
    """Run now (the scheduler picks it up within a second); ``restart=true`` drops the current run first and
    starts the workflow."""
    async with runtime.transaction() as session:
        workflow = await service.find_workflow(session, workflow_id)
        if restart:
            run = await service.restart_workflow(session, workflow)
        else:
            run = await service.run_now(session, workflow)
        audit(session, who, "restarted" if restart else "ran", "workflow", workflow_id, {"run": run.id})
        return RunOut.of(run)


@router.get("/workflows/{workflow_id}/runs", response_model=list[RunOut])
async def list_runs(workflow_id: Id, runtime: RuntimeDep, _who: CanView) -> list[RunOut]:
    async with runtime.transaction() as session:
        await service.find_workflow(session, workflow_id)
        return [RunOut.of(run) for run in await service.list_runs(session, workflow_id)]


@router.get("/workflows/{workflow_id}/runs/{run_id}", response_model=RunOut)
async def read_run(workflow_id: Id, run_id: Id, runtime: RuntimeDep, _who: CanView) -> RunOut:
    async with runtime.transaction() as session:
        run, steps = await service.find_run(session, workflow_id, run_id)
        return RunOut.of(run, steps)


@router.post("/workflows/{workflow_id}/{action}", response_model=WorkflowOut)
async def change_state(workflow_id: Id, action: Action, runtime: RuntimeDep, who: CanManageWorkflows) -> WorkflowOut:
    """start (run on its schedule), pause, resume (a paused workflow, or one in error: retries the failed
    activity) or stop (drops the current run)."""
    actions = {
        "start": service.start_workflow,
        "pause": service.pause_workflow,
        "resume": service.resume_workflow,
        "stop": service.stop_workflow,
    }
    async with runtime.transaction() as session:
        workflow = await actions[action](session, await service.find_workflow(session, workflow_id))
        audit(session, who, _DONE[action], "workflow", workflow_id)
        return WorkflowOut.of(workflow)


@router.get("/workflow-templates", response_model=list[WorkflowOut])
async def list_templates(runtime: RuntimeDep, _who: CanView) -> list[WorkflowOut]:
    async with runtime.transaction() as session:
        return [WorkflowOut.of(w) for w in await service.list_workflows(session, templates=True)]


@router.post("/workflow-templates", response_model=WorkflowOut, status_code=201)
async def create_template(body: WorkflowIn, runtime: RuntimeDep, who: CanManageWorkflows) -> WorkflowOut:
    """A template of your own, copied from another (the factory one unless ``template`` names another)."""
    async with runtime.transaction() as session:
        template = await service.create_workflow(
            session, name=body.name, template_id=body.template, fields=_fields(body), actor=who.actor, is_template=True
        )
        audit(session, who, "created", "workflow_template", template.id, {"name": template.name})
        return WorkflowOut.of(template)


@router.get("/workflow-templates/{template_id}", response_model=WorkflowOut)
async def read_template(template_id: Id, runtime: RuntimeDep, _who: CanView) -> WorkflowOut:
    async with runtime.transaction() as session:
        return WorkflowOut.of(await service.find_workflow(session, template_id, template=True))


@router.patch("/workflow-templates/{template_id}", response_model=WorkflowOut)
async def change_template(
    template_id: Id, body: WorkflowFields, runtime: RuntimeDep, who: CanManageWorkflows
) -> WorkflowOut:
    async with runtime.transaction() as session:
        template = await service.find_workflow(session, template_id, template=True)
        template = await service.update_workflow(session, template, _fields(body))
        audit(session, who, "updated", "workflow_template", template_id, {"fields": sorted(_fields(body))})
        return WorkflowOut.of(template)


@router.delete("/workflow-templates/{template_id}", status_code=204)
async def delete_template(template_id: Id, runtime: RuntimeDep, who: CanManageWorkflows) -> None:
    async with runtime.transaction() as session:
        await service.delete_workflow(session, await service.find_workflow(session, template_id, template=True))
        audit(session, who, "deleted", "workflow_template", template_id)
