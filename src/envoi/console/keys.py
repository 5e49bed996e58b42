"""API keys, for administrators: create one for an operator or a service account (shown once), revoke one;
each with when it was last used."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import select
from starlette.responses import Response

from envoi.access.audit import audit
from envoi.access.models import Operator
from envoi.access.permissions import Permission
from envoi.access.service import create_api_key, list_api_keys, revoke_api_key
from envoi.console.forms import FieldErrors, read_form
from envoi.console.rendering import render
from envoi.console.routing import console_router, runtime_of, see_other
from envoi.console.session import CanManageOperators

router = console_router()
KeyId = Annotated[int, Path(ge=1, le=2**63 - 1)]


async def _keys_page(
    request: Request,
    *,
    values: dict[str, str] | None = None,
    chosen: list[str] | None = None,
    errors: FieldErrors | None = None,
    created: str | None = None,
    flash: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    async with runtime_of(request).transaction() as session:
        keys = await list_api_keys(session)
        operators = list((await session.scalars(select(Operator).order_by(Operator.email))).all())
    context = {
        "keys": list(reversed(keys)),
        "operators": operators,
        "emails": {operator.id: operator.email for operator in operators},
        "values": values or {},
        "chosen": chosen if chosen is not None else [Permission.PUSH_EVENTS.value],
        "errors": errors or {},
        "created": created,  # the new key, shown this once
        "flash": flash,
    }
    return render(request, "api_keys.html", context, status=status)


@router.get("/api-keys")
async def api_keys(request: Request, _viewer: CanManageOperators, done: str = "") -> HTMLResponse:
    return await _keys_page(request, flash="Key revoked." if done == "revoked" else None)


@router.post("/api-keys")
async def add_api_key(request: Request, viewer: CanManageOperators) -> Response:
    form = await read_form(request)
    name, owner, chosen = form.text("name"), form.text("owner"), form.checked("scopes")
    errors: FieldErrors = {}
    if not name or len(name) > 200:
        errors["name"] = "Name who or what uses the key (at most 200 characters)."
    scopes = [Permission(value) for value in chosen if value in Permission._value2member_map_]
    if not scopes:
        errors["scopes"] = "Choose at least one permission."
    operator_id = int(owner) if owner.isdecimal() and int(owner) < 2**63 else None
    async with runtime_of(request).transaction() as session:
        if owner and (operator_id is None or await session.get(Operator, operator_id) is None):
            errors["owner"] = "This operator does not exist."
        if errors:
            plaintext = None
        else:
            key, plaintext = await create_api_key(session, name, operator_id=operator_id, scopes=scopes)
            audit(session, viewer.principal, "created", "api_key", key.id, {"name": key.name, "scopes": key.scopes})
    if plaintext is None:
        values = {"name": name, "owner": owner}
        return await _keys_page(request, values=values, chosen=chosen, errors=errors, status=422)
    return await _keys_page(request, created=plaintext)


@router.post("/api-keys/{key_id}/revoke")
async def revoke(request: Request, key_id: KeyId, viewer: CanManageOperators) -> Response:
    async with runtime_of(request).transaction() as session:
        await revoke_api_key(session, key_id)
        audit(session, viewer.principal, "revoked", "api_key", key_id)
    return see_other("/console/api-keys?done=revoked")
