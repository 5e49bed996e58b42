"""A workflow template's page: the workflow page without state, actions or runs; read only for the factory
template, whose copies are the templates of one's own."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import HTMLResponse
from starlette.responses import Response

from envoi.console.routing import console_router
from envoi.console.session import CanManageWorkflows, CanView
from envoi.console.workflows import DONE, WorkflowId, delete, save_definition, save_properties, workflow_page

router = console_router()


@router.get("/workflow-templates/{template_id}")
async def template_detail(request: Request, template_id: WorkflowId, _viewer: CanView, done: str = "") -> HTMLResponse:
    return await workflow_page(request, template_id, template=True, flash=DONE.get(done))


@router.post("/workflow-templates/{template_id}/properties")
async def template_properties(request: Request, template_id: WorkflowId, viewer: CanManageWorkflows) -> Response:
    return await save_properties(request, template_id, viewer, template=True)


@router.post("/workflow-templates/{template_id}/definition")
async def template_definition(request: Request, template_id: WorkflowId, viewer: CanManageWorkflows) -> Response:
    return await save_definition(request, template_id, viewer, template=True)


@router.post("/workflow-templates/{template_id}/delete")
async def delete_template(request: Request, template_id: WorkflowId, viewer: CanManageWorkflows) -> Response:
    return await delete(request, template_id, viewer, template=True)
