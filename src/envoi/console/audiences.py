"""Audiences: the list with who each one reaches now, and the form to create or change one, its filters written
as JSON (checked as typed, with a live count of who they keep; refused with each problem's path)."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import Path, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import select
from starlette.responses import Response

from envoi.access.audit import audit
from envoi.campaigns import audiences as service
from envoi.campaigns.models import Audience, Delivery
from envoi.console.forms import FieldErrors, json_field, read_form, service_errors
from envoi.console.rendering import render
from envoi.console.routing import console_router, runtime_of, see_other
from envoi.console.session import CanManageDeliveries, CanView, Viewer
from envoi.errors import Conflict, EnvoiError, ValidationFailed

router = console_router()
AudienceId = Annotated[int, Path(ge=1, le=2**62)]
FIELDS = ("name", "label", "filters")
EXAMPLE = [{"field": "language", "op": "eq", "value": "fr"}, {"field": "attributes.vip", "op": "eq", "value": True}]
DONE = {"created": "Audience created.", "saved": "Audience saved.", "deleted": "Audience deleted."}


@router.get("/audiences")
async def audiences(request: Request, _viewer: CanView, done: str = "") -> HTMLResponse:
    counts: dict[int, dict[str, int] | None] = {}
    async with runtime_of(request).transaction() as session:
        found = await service.list_audiences(session)
        for audience in found:
            try:
                counts[audience.id] = await service.count_audience(session, audience.filters)
            except EnvoiError:  # its stored filters no longer validate: its page says why
                counts[audience.id] = None
    return render(request, "profiles/audiences.html", {"audiences": found, "counts": counts, "flash": DONE.get(done)})


async def _form_page(
    request: Request,
    audience_id: int | None,
    values: dict[str, str] | None = None,
    errors: FieldErrors | None = None,
    problems: list[dict[str, str]] | None = None,
    flash: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    audience: Audience | None = None
    count: dict[str, int] | None = None
    users: list[Delivery] = []
    async with runtime_of(request).transaction() as session:
        if audience_id is not None:
            audience = await service.find_audience(session, audience_id)
            try:
                count = await service.count_audience(session, audience.filters)
            except EnvoiError:
                count = None
            users = list(await session.scalars(select(Delivery).where(Delivery.audience_id == audience_id)
                                               .order_by(Delivery.id.desc()).limit(20)))  # fmt: skip
    stored = {"name": audience.name, "label": audience.label,
              "filters": json.dumps(audience.filters, indent=2, ensure_ascii=False)} if audience else {}  # fmt: skip
    context = {
        "audience": audience,
        "count": count,
        "users": users,
        "values": stored | (values or {}),
        "errors": errors or {},
        "problems": problems or [],
        "example": json.dumps(EXAMPLE, indent=2),
        "flash": flash,
    }
    return render(request, "profiles/audience.html", context, status=status)


@router.get("/audiences/new")
async def new_audience(request: Request, _viewer: CanManageDeliveries) -> HTMLResponse:
    return await _form_page(request, None, {"filters": "[]"})


async def _save(request: Request, viewer: Viewer, audience_id: int | None) -> Response:
    form = await read_form(request)
    errors: FieldErrors = {}
    problems: list[dict[str, str]] = []
    filters: Any = json_field(form, "filters", errors, kind=list)
    if filters is None and not errors:
        filters = []
    changes = {"name": form.text("name"), "label": form.text("label"), "filters": filters}
    if not errors:
        try:
            async with runtime_of(request).transaction() as session:
                if audience_id is None:
                    saved = await service.create_audience(session, **changes, actor=viewer.principal.actor)
                    audit(session, viewer.principal, "created", "audience", saved.id, {"name": saved.name})
                else:
                    found = await service.find_audience(session, audience_id)
                    saved = await service.update_audience(session, found, changes)
                    audit(session, viewer.principal, "updated", "audience", audience_id, {"fields": sorted(changes)})
            return see_other(f"/console/audiences/{saved.id}?done={'created' if audience_id is None else 'saved'}")
        except (ValidationFailed, Conflict) as refused:
            problems = [p for p in refused.details.get("errors", []) if str(p.get("field", "")).startswith("filters")]
            errors = service_errors(refused, FIELDS)
            if problems:
                errors.pop("", None)
                errors["filters"] = f"{len(problems)} problem{'s' if len(problems) > 1 else ''}: see the list below."
    values = {name: form.raw(name) if name == "filters" else form.text(name) for name in FIELDS}
    errors.setdefault("", "Nothing was saved: correct what is marked below.")
    return await _form_page(request, audience_id, values, errors, problems, status=422)


@router.post("/audiences/new")
async def create_audience(request: Request, viewer: CanManageDeliveries) -> Response:
    return await _save(request, viewer, None)


@router.get("/audiences/{audience_id}")
async def audience_detail(request: Request, audience_id: AudienceId, _viewer: CanView, done: str = "") -> HTMLResponse:
    return await _form_page(request, audience_id, flash=DONE.get(done))


@router.post("/audiences/{audience_id}")
async def change_audience(request: Request, audience_id: AudienceId, viewer: CanManageDeliveries) -> Response:
    return await _save(request, viewer, audience_id)


@router.post("/audiences/{audience_id}/delete")
async def delete_audience(request: Request, audience_id: AudienceId, viewer: CanManageDeliveries) -> Response:
    try:
        async with runtime_of(request).transaction() as session:
            await service.delete_audience(session, await service.find_audience(session, audience_id))
            audit(session, viewer.principal, "deleted", "audience", audience_id)
    except Conflict as conflict:
        errors = {"": f"Nothing was deleted: {conflict.message}."}
        return await _form_page(request, audience_id, errors=errors, status=409)
    return see_other("/console/audiences?done=deleted")
