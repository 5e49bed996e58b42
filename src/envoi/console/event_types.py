"""Event types: the list, one type with its schema, sample and templates, and the form to create or change one."""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from pydantic import ValidationError
from starlette.responses import Response

from envoi.access.audit import audit
from envoi.console.forms import FieldErrors, Form, json_field, pydantic_errors, read_form, service_errors
from envoi.console.rendering import render
from envoi.console.routing import console_router, runtime_of, see_other
from envoi.console.session import CanEditTemplates, CanView, Viewer
from envoi.errors import EnvoiError
from envoi.events import types
from envoi.events.models import EventType
from envoi.events.schemas import EventTypeIn
from envoi.templates.service import list_templates

router = console_router()
FIELDS = ("name", "label", "schema", "sample", "defaultChannel", "fallbackChannel", "profileBased")
CHANNELS = [("", "(none)"), ("email", "email"), ("sms", "sms"), ("push", "push")]


@router.get("/event-types")
async def event_types(request: Request, _viewer: CanView) -> HTMLResponse:
    async with runtime_of(request).transaction() as session:
        found = await types.list_event_types(session)
        templates = await list_templates(session)
    by_type: dict[str, list[Any]] = {}
    for template in templates:
        by_type.setdefault(template.event_type, []).append(template)
    return render(request, "event_types.html", {"event_types": found, "templates": by_type})


def _values(event_type: EventType | None) -> dict[str, str]:
    if event_type is None:
        return {}
    return {
        "name": event_type.name,
        "label": event_type.label,
        "schema": json.dumps(event_type.json_schema, indent=2) if event_type.json_schema is not None else "",
        "sample": json.dumps(event_type.sample, indent=2, ensure_ascii=False) if event_type.sample is not None else "",
        "defaultChannel": event_type.default_channel or "",
        "fallbackChannel": event_type.fallback_channel or "",
        "profileBased": "yes" if event_type.profile_based else "",
    }


def _form_page(
    request: Request, values: dict[str, str], errors: FieldErrors, *, existing: str | None, status: int = 200
) -> HTMLResponse:
    context = {"values": values, "errors": errors, "existing": existing, "channels": CHANNELS}
    return render(request, "event_type_form.html", context, status=status)


@router.get("/event-types/new")
async def new_event_type(request: Request, _viewer: CanEditTemplates) -> HTMLResponse:
    return _form_page(request, {}, {}, existing=None)


def _parse(form: Form) -> tuple[EventTypeIn | None, FieldErrors]:
    errors: FieldErrors = {}
    given = {
        "name": form.text("name"),
        "label": form.text("label"),
        "schema": json_field(form, "schema", errors),
        "sample": json_field(form, "sample", errors),
        "defaultChannel": form.optional("defaultChannel"),
        "fallbackChannel": form.optional("fallbackChannel"),
        "profileBased": form.text("profileBased") == "yes",
    }
    if errors:
        return None, errors
    try:
        return EventTypeIn.model_validate(given), {}
    except ValidationError as error:
        return None, pydantic_errors(error, FIELDS)


async def _save(request: Request, viewer: Viewer, existing: str | None) -> Response:
    form = await read_form(request)
    data, errors = _parse(form)
    if data is not None:
        try:
            async with runtime_of(request).transaction() as session:
                if existing is None:
                    saved = await types.create_event_type(session, data)
                    audit(session, viewer.principal, "created", "event_type", saved.name)
                else:
                    saved = await types.update_event_type(session, existing, data)
                    audit(session, viewer.principal, "changed", "event_type", existing)
            return see_other(f"/console/event-types/{saved.name}?done=saved")
        except EnvoiError as error:
            errors = service_errors(error, FIELDS)
    values = form.values() | ({"name": existing} if existing else {})
    return _form_page(request, values, errors, existing=existing, status=422)


@router.post("/event-types/new")
async def create_event_type(request: Request, viewer: CanEditTemplates) -> Response:
    return await _save(request, viewer, None)


@router.get("/event-types/{name}")
async def event_type(request: Request, name: str, _viewer: CanView, done: str | None = None) -> HTMLResponse:
    async with runtime_of(request).transaction() as session:
        found = await types.get_event_type(session, name)
        templates = await list_templates(session, event_type=name)
    flash = "Event type saved." if done == "saved" else None
    return render(request, "event_type.html", {"event_type": found, "templates": templates, "flash": flash})


@router.get("/event-types/{name}/edit")
async def edit_event_type(request: Request, name: str, _viewer: CanEditTemplates) -> HTMLResponse:
    async with runtime_of(request).transaction() as session:
        found = await types.get_event_type(session, name)
    return _form_page(request, _values(found), {}, existing=name)


@router.post("/event-types/{name}/edit")
async def change_event_type(request: Request, name: str, viewer: CanEditTemplates) -> Response:
    return await _save(request, viewer, name)
