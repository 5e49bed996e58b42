"""Operators, for administrators: create one with their groups, change their groups, deactivate them."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Path, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from envoi.access import groups as group_service
from envoi.access.audit import audit
from envoi.access.models import ApiKey, GroupMember, Operator, SecurityGroup
from envoi.access.operators import create_operator, set_active
from envoi.console.forms import FieldErrors, read_form, service_errors
from envoi.console.rendering import render
from envoi.console.routing import console_router, runtime_of, see_other
from envoi.console.session import CanManageOperators, Viewer
from envoi.errors import EnvoiError, NotFound, ValidationFailed

router = console_router()
OperatorId = Annotated[int, Path(ge=1, le=2**63 - 1)]
FIELDS = ("email", "name", "password", "groups")
ADMINISTRATORS = "administrators"
DONE = {
    "groups": "Groups changed.",
    "deactivated": "Deactivated: their sessions and API keys no longer work.",
    "activated": "Activated: they can log in again.",
}


async def memberships(session: AsyncSession) -> dict[int, list[SecurityGroup]]:
    """Every operator's groups, in one query."""
    rows = await session.execute(
        select(GroupMember.operator_id, SecurityGroup)
        .join(SecurityGroup, SecurityGroup.id == GroupMember.group_id)
        .order_by(SecurityGroup.id)
    )
    found: dict[int, list[SecurityGroup]] = {}
    for operator_id, group in rows:
        found.setdefault(operator_id, []).append(group)
    return found


async def _operators_page(
    request: Request,
    *,
    values: dict[str, str] | None = None,
    chosen: list[str] | None = None,
    errors: FieldErrors | None = None,
    created: tuple[str, str] | None = None,
    status: int = 200,
) -> HTMLResponse:
    async with runtime_of(request).transaction() as session:
        operators = list((await session.scalars(select(Operator).order_by(Operator.id))).all())
        groups_by_operator = await memberships(session)
        groups = await group_service.list_groups(session)
    context = {
        "operators": operators,
        "groups_by_operator": groups_by_operator,
        "groups": groups,
        "values": values or {},
        "chosen": chosen or [],
        "errors": errors or {},
        "created": created,  # (email, one-time password) right after a creation without a password
    }
    return render(request, "operators.html", context, status=status)


@router.get("/operators")
async def operators(request: Request, _viewer: CanManageOperators) -> HTMLResponse:
    return await _operators_page(request)


@router.post("/operators")
async def add_operator(request: Request, viewer: CanManageOperators) -> Response:
    form = await read_form(request)
    email, name, chosen = form.text("email"), form.text("name"), form.checked("groups")
    password = form.raw("password") or secrets.token_urlsafe(18)
    try:
        async with runtime_of(request).transaction() as session:
            operator = await create_operator(session, email=email, name=name, password=password)
            await group_service.set_groups(session, operator.id, chosen)
            details = {"email": operator.email, "groups": chosen}
            audit(session, viewer.principal, "created", "operator", operator.id, details)
    except EnvoiError as error:
        values = {"email": email, "name": name}
        errors = service_errors(error, FIELDS, {"group": "groups"})
        return await _operators_page(request, values=values, chosen=chosen, errors=errors, status=422)
    if form.raw("password"):
        return see_other(f"/console/operators/{operator.id}?done=created")
    return await _operators_page(request, created=(operator.email, password))


async def _operator(session: AsyncSession, operator_id: int) -> Operator:
    operator = await session.get(Operator, operator_id)
    if operator is None:
        raise NotFound(f"operator {operator_id} does not exist")
    return operator


async def _operator_page(
    request: Request, operator_id: int, *, flash: str | None = None, errors: FieldErrors | None = None,
    status: int = 200,
) -> HTMLResponse:  # fmt: skip
    async with runtime_of(request).transaction() as session:
        operator = await _operator(session, operator_id)
        mine = [group.name for group in await group_service.groups_of(session, operator_id)]
        groups = await group_service.list_groups(session)
        keys = list((await session.scalars(select(ApiKey).where(ApiKey.operator_id == operator_id))).all())
    context = {"subject": operator, "mine": mine, "groups": groups, "keys": keys, "flash": flash,
               "errors": errors or {}}  # fmt: skip
    return render(request, "operator.html", context, status=status)


@router.get("/operators/{operator_id}")
async def operator_detail(
    request: Request, operator_id: OperatorId, _viewer: CanManageOperators, done: str = ""
) -> HTMLResponse:
    flash = "Operator created." if done == "created" else DONE.get(done)
    return await _operator_page(request, operator_id, flash=flash)


@router.post("/operators/{operator_id}/groups")
async def change_groups(request: Request, operator_id: OperatorId, viewer: CanManageOperators) -> Response:
    chosen = (await read_form(request)).checked("groups")
    try:
        async with runtime_of(request).transaction() as session:
            await _operator(session, operator_id)
            if operator_id == viewer.operator.id and ADMINISTRATORS not in chosen:
                raise ValidationFailed("You cannot take yourself out of the administrators.", field="groups")
            await group_service.set_groups(session, operator_id, chosen)
            audit(session, viewer.principal, "changed", "operator", operator_id, {"groups": chosen})
    except ValidationFailed as error:
        return await _operator_page(request, operator_id, errors={"groups": error.message}, status=422)
    return see_other(f"/console/operators/{operator_id}?done=groups")


async def _set_active(request: Request, operator_id: int, viewer: Viewer, active: bool) -> Response:
    if not active and operator_id == viewer.operator.id:
        return await _operator_page(request, operator_id, errors={"": "You cannot deactivate yourself."}, status=422)
    async with runtime_of(request).transaction() as session:
        await set_active(session, await _operator(session, operator_id), active)
        audit(session, viewer.principal, "changed", "operator", operator_id, {"active": active})
    return see_other(f"/console/operators/{operator_id}?done={'activated' if active else 'deactivated'}")


@router.post("/operators/{operator_id}/deactivate")
async def deactivate(request: Request, operator_id: OperatorId, viewer: CanManageOperators) -> Response:
    return await _set_active(request, operator_id, viewer, False)


@router.post("/operators/{operator_id}/activate")
async def activate(request: Request, operator_id: OperatorId, viewer: CanManageOperators) -> Response:
    return await _set_active(request, operator_id, viewer, True)
