"""A template's life: publish the draft, unpublish, pause, resume, roll back to a version, delete a draft;
and its versions, with the diff between two of them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Path, Query, Request
from fastapi.responses import HTMLResponse
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from envoi.console.editor import TemplateId, editor_page
from envoi.console.rendering import render
from envoi.console.routing import console_router, runtime_of, see_other
from envoi.console.session import CanEditTemplates, CanPublish, CanView
from envoi.errors import Conflict, PublishRefused
from envoi.reports.figures import figures_by_version
from envoi.templates import service, versions

router = console_router()
VersionNumber = Annotated[int, Path(ge=1, le=2**31 - 1)]


@router.post("/templates/{template_id}/publish")
async def publish(request: Request, template_id: TemplateId, viewer: CanPublish) -> Response:
    try:
        async with runtime_of(request).transaction() as session:
            await versions.publish_template(session, template_id, viewer.principal.actor)
    except PublishRefused as refused:
        problems = refused.details.get("errors") or [{"field": refused.field or "", "message": refused.message}]
        return await editor_page(request, template_id, problems=problems, status=422)
    except Conflict as conflict:
        return await editor_page(request, template_id, errors={"": conflict.message}, status=409)
    return see_other(f"/console/templates/{template_id}?done=published")


async def _change_state(
    request: Request,
    template_id: int,
    change: Callable[[AsyncSession], Awaitable[object]],
    done: str,
    *,
    releases_events: bool = False,
) -> Response:
    """Unpublish, pause or resume: a refusal shows on the editor; events released go back to the queue at once."""
    runtime = runtime_of(request)
    try:
        async with runtime.transaction() as session:
            await change(session)
    except Conflict as conflict:
        return await editor_page(request, template_id, errors={"": conflict.message}, status=409)
    if releases_events:
        runtime.wakeup.ring()
    return see_other(f"/console/templates/{template_id}?done={done}")


@router.post("/templates/{template_id}/unpublish")
async def unpublish(request: Request, template_id: TemplateId, viewer: CanPublish) -> Response:
    actor = viewer.principal.actor
    return await _change_state(
        request, template_id, lambda s: service.unpublish_template(s, template_id, actor), "unpublished",
        releases_events=True,
    )  # fmt: skip


@router.post("/templates/{template_id}/pause")
async def pause(request: Request, template_id: TemplateId, viewer: CanPublish) -> Response:
    actor = viewer.principal.actor
    return await _change_state(request, template_id, lambda s: service.pause_template(s, template_id, actor), "paused")


@router.post("/templates/{template_id}/resume")
async def resume(request: Request, template_id: TemplateId, viewer: CanPublish) -> Response:
    actor = viewer.principal.actor
    return await _change_state(
        request, template_id, lambda s: service.resume_template(s, template_id, actor), "resumed",
        releases_events=True,
    )  # fmt: skip


@router.post("/templates/{template_id}/delete")
async def delete(request: Request, template_id: TemplateId, viewer: CanEditTemplates) -> Response:
    try:
        async with runtime_of(request).transaction() as session:
            await service.delete_template(session, template_id, viewer.principal.actor)
    except Conflict as conflict:
        return await editor_page(request, template_id, errors={"": conflict.message}, status=409)
    return see_other("/console/templates?done=deleted")


@router.post("/templates/{template_id}/versions/{number}/republish")
async def republish(request: Request, template_id: TemplateId, number: VersionNumber, viewer: CanPublish) -> Response:
    try:
        async with runtime_of(request).transaction() as session:
            await versions.republish_version(session, template_id, number, viewer.principal.actor)
    except Conflict as conflict:
        return await editor_page(request, template_id, errors={"": conflict.message}, status=409)
    return see_other(f"/console/templates/{template_id}?done=republished")


def _diff_lines(diff: str) -> list[tuple[str, str]]:
    """Each line of a unified diff with its kind, for colouring: added, removed, hunk, file or same."""
    kinds = []
    for line in diff.splitlines():
        if line.startswith(("+++", "---")):
            kind = "file"
        elif line.startswith("@@"):
            kind = "hunk"
        elif line.startswith("+"):
            kind = "added"
        elif line.startswith("-"):
            kind = "removed"
        else:
            kind = "same"
        kinds.append((kind, line))
    return kinds


@router.get("/templates/{template_id}/versions")
async def template_versions(
    request: Request,
    template_id: TemplateId,
    _viewer: CanView,
    old: Annotated[int | None, Query(alias="from")] = None,
    new: Annotated[int | None, Query(alias="to")] = None,
    show: int | None = None,
) -> HTMLResponse:
    """Every version; with ``from`` and ``to``, what changed between them; with ``show``, one version's content."""
    async with runtime_of(request).transaction() as session:
        template = await service.get_template(session, template_id)
        found = (await versions.list_versions(session, [template_id]))[template_id]
        figures = await figures_by_version(session, [v.id for v in found])
        diff = shown = None
        if old is not None and new is not None:
            diff = _diff_lines(await versions.diff_versions(session, template_id, old, new))
        if show is not None:
            shown = versions.version_lines(await versions.get_version(session, template_id, show))
    latest = found[-1].number if found else None
    context = {
        "template": template,
        "versions": found,
        "figures": figures,
        "diff": diff,
        "shown": shown,
        "show": show,
        "old": old if old is not None else (latest - 1 if latest and latest > 1 else latest),
        "new": new if new is not None else latest,
    }
    return render(request, "template_versions.html", context)
