"""Security groups, for administrators: the built-in ones and custom groups with the permissions they grant."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import Request
from fastapi.responses import HTMLResponse
from sqlalchemy import func, select
from starlette.responses import Response

from envoi.access import groups as group_service
from envoi.access.audit import audit
from envoi.access.models import GroupMember
from envoi.console.forms import FieldErrors, read_form, service_errors
from envoi.console.rendering import render
from envoi.console.routing import console_router, runtime_of, see_other
from envoi.console.session import CanManageOperators
from envoi.errors import EnvoiError

router = console_router()
FIELDS = ("name", "label", "permissions")
DONE = {"created": "Group created.", "saved": "Group saved.", "deleted": "Group deleted."}


async def _groups_page(
    request: Request,
    *,
    values: dict[str, str] | None = None,
    chosen: list[str] | None = None,
    errors: FieldErrors | None = None,
    flash: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    async with runtime_of(request).transaction() as session:
        groups = await group_service.list_groups(session)
        rows = await session.execute(select(GroupMember.group_id, func.count()).group_by(GroupMember.group_id))
        counts = {group_id: int(count) for group_id, count in rows}
    context = {
        "groups": groups, "counts": counts, "values": values or {}, "chosen": chosen or [], "errors": errors or {},
        "flash": flash,
    }  # fmt: skip
    return render(request, "groups.html", context, status=status)


@router.get("/groups")
async def groups(request: Request, _viewer: CanManageOperators, done: str = "") -> HTMLResponse:
    return await _groups_page(request, flash=DONE.get(done))


@router.post("/groups")
async def add_group(request: Request, viewer: CanManageOperators) -> Response:
    form = await read_form(request)
    name, label, chosen = form.text("name"), form.text("label"), form.checked("permissions")
    try:
        async with runtime_of(request).transaction() as session:
            group = await group_service.create_group(session, name, label, chosen)
            audit(session, viewer.principal, "created", "group", group.name, {"permissions": group.permissions})
    except EnvoiError as error:
        values = {"name": name, "label": label}
        return await _groups_page(request, values=values, chosen=chosen, errors=service_errors(error, FIELDS),
                                  status=422)  # fmt: skip
    return see_other(f"/console/groups/{quote(group.name)}?done=created")


async def _group_page(
    request: Request, name: str, *, flash: str | None = None, errors: FieldErrors | None = None, status: int = 200
) -> HTMLResponse:
    async with runtime_of(request).transaction() as session:
        group = await group_service.find_group(session, name)
        members = await group_service.members_of(session, name)
    context = {"group": group, "members": members, "errors": errors or {}, "flash": flash}
    return render(request, "group.html", context, status=status)


@router.get("/groups/{name}")
async def group_detail(request: Request, name: str, _viewer: CanManageOperators, done: str = "") -> HTMLResponse:
    return await _group_page(request, name, flash=DONE.get(done))


@router.post("/groups/{name}")
async def change_group(request: Request, name: str, viewer: CanManageOperators) -> Response:
    form = await read_form(request)
    try:
        async with runtime_of(request).transaction() as session:
            group = await group_service.find_group(session, name)
            permissions = None if group.built_in else form.checked("permissions")
            await group_service.update_group(session, name, label=form.text("label"), permissions=permissions)
            changes = {"label": form.text("label")} | ({"permissions": permissions} if permissions is not None else {})
            audit(session, viewer.principal, "changed", "group", name, changes)
    except EnvoiError as error:
        if error.status_code == 404:
            raise
        return await _group_page(request, name, errors=service_errors(error, FIELDS), status=422)
    return see_other(f"/console/groups/{quote(name)}?done=saved")


@router.post("/groups/{name}/delete")
async def delete_group(request: Request, name: str, viewer: CanManageOperators) -> Response:
    try:
        async with runtime_of(request).transaction() as session:
            await group_service.delete_group(session, name)
            audit(session, viewer.principal, "deleted", "group", name)
    except EnvoiError as error:
        if error.status_code == 404:
            raise
        return await _group_page(request, name, errors={"": error.message}, status=409)
    return see_other("/console/groups?done=deleted")
