"""Templates: the list, a new template, and the editor of a draft (the channel's fields, a preview that the
page's script asks the REST API for, the template's seeds, versions and audit trail)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import Path, Request
from fastapi.responses import HTMLResponse
from pydantic import ValidationError
from starlette.responses import Response

from envoi.console.forms import FieldErrors, Form, json_field, pydantic_errors, read_form, service_errors
from envoi.console.rendering import render
from envoi.console.routing import console_router, runtime_of, see_other
from envoi.console.session import CanEditTemplates, CanView
from envoi.errors import EnvoiError
from envoi.events.types import list_event_types
from envoi.templates import audit, service
from envoi.templates.design import Design
from envoi.templates.layouts import list_layouts
from envoi.templates.models import Template
from envoi.templates.schemas import TemplateIn
from envoi.templates.seeds import list_seeds
from envoi.templates.versions import list_versions

router = console_router()
TemplateId = Annotated[int, Path(ge=1, le=2**63 - 1)]
CHANNEL_FIELDS = {
    "email": ("email.from", "email.replyTo", "email.subject", "email.body", "email.text"),
    "sms": ("sms.from", "sms.text"),
    "push": ("push.title", "push.body", "push.data", "push.badge", "push.sound"),
}
FIELDS = ("name", "eventType", "channel", "language", "layout", "variants", *sum(CHANNEL_FIELDS.values(), ()))
_ALIASES = {"email.html": "email.body", "email.mjml": "email.body"}
DONE = {
    "created": "Template created. Edit its draft, preview it, then publish it.",
    "saved": "Draft saved.",
    "published": "Published: new events are rendered with this version.",
    "unpublished": "Unpublished: events of its type and channel now fail routing.",
    "paused": "Paused: its events wait until it is resumed.",
    "resumed": "Resumed: waiting events are being sent.",
    "republished": "That version is live again.",
    "deleted": "Draft deleted.",
}


@router.get("/templates")
async def templates(
    request: Request, _viewer: CanView, eventType: str | None = None, channel: str | None = None, done: str = ""
) -> HTMLResponse:
    async with runtime_of(request).transaction() as session:
        found = await service.list_templates(session, event_type=eventType or None, channel=channel or None)
        versions = await list_versions(session, [t.id for t in found])
    live = {t.id: next((v.number for v in versions[t.id] if v.id == t.live_version_id), None) for t in found}
    context = {"templates": found, "live": live, "filters": {"eventType": eventType or "", "channel": channel or ""}}
    return render(request, "templates.html", context | {"flash": DONE.get(done)})


def template_input(form: Form, *, channel: str, event_type: str) -> tuple[dict[str, Any], FieldErrors]:
    """The API's shape of a template from the editor's fields (named by their path in that shape)."""
    errors: FieldErrors = {}
    given: dict[str, Any] = {
        "name": form.text("name"),
        "eventType": event_type,
        "channel": channel,
        "language": form.text("language") or "en",
        "variants": json_field(form, "variants", errors) or {},
    }
    if channel == "email":
        body = "mjml" if form.text("email.bodyKind") == "mjml" else "html"
        given["layout"] = form.optional("layout")
        content = {
            "from": form.text("email.from"),
            "replyTo": form.text("email.replyTo"),
            "subject": form.text("email.subject"),
            body: form.raw("email.body"),
            "text": form.raw("email.text"),
        }
    elif channel == "sms":
        content = {"from": form.text("sms.from"), "text": form.raw("sms.text")}
    else:
        content = {
            "title": form.text("push.title"),
            "body": form.raw("push.body"),
            "data": json_field(form, "push.data", errors),
            "badge": form.text("push.badge"),
            "sound": form.text("push.sound"),
        }
    given[channel] = {key: value for key, value in content.items() if value not in (None, "")}
    return given, errors


def validate(given: Mapping[str, Any], errors: FieldErrors) -> TemplateIn | None:
    if errors:
        return None
    try:
        return TemplateIn.model_validate(given)
    except ValidationError as error:
        errors.update(pydantic_errors(error, FIELDS, _ALIASES))
        return None


def template_values(template: Template) -> dict[str, str]:
    """The draft as the editor's fields."""
    draft = Design.of_draft(template.content)
    content = draft.content
    values = {
        "name": template.name,
        "language": draft.language,
        "layout": template.content.get("layout") or "",
        "variants": json.dumps(draft.variants, indent=2, ensure_ascii=False) if draft.variants else "",
    }
    if draft.channel == "email":
        values |= {
            "email.from": content.get("from", ""),
            "email.replyTo": content.get("replyTo") or "",
            "email.subject": content.get("subject", ""),
            "email.bodyKind": "mjml" if content.get("mjml") else "html",
            "email.body": content.get("mjml") or content.get("html") or "",
            "email.text": content.get("text") or "",
        }
    elif draft.channel == "sms":
        values |= {"sms.from": content.get("from") or "", "sms.text": content.get("text", "")}
    else:
        data = content.get("data")
        values |= {
            "push.title": content.get("title") or "",
            "push.body": content.get("body", ""),
            "push.data": json.dumps(data, indent=2, ensure_ascii=False) if data else "",
            "push.badge": str(content.get("badge") or ""),
            "push.sound": content.get("sound") or "",
        }
    return values


async def _new_page(request: Request, values: dict[str, str], errors: FieldErrors, status: int = 200) -> HTMLResponse:
    async with runtime_of(request).transaction() as session:
        event_types = await list_event_types(session)
        layouts = await list_layouts(session)
    context = {
        "values": values,
        "errors": errors,
        "event_type_options": [(t.name, f"{t.name} — {t.label}") for t in event_types],
        "layout_options": [(layout.name, layout.name) for layout in layouts],
    }
    return render(request, "template_new.html", context, status=status)


@router.get("/templates/new")
async def new_template(request: Request, _viewer: CanEditTemplates, eventType: str = "") -> HTMLResponse:
    values = {"eventType": eventType, "channel": "email", "language": "en", "email.bodyKind": "html"}
    return await _new_page(request, values, {})


@router.post("/templates/new")
async def create_template(request: Request, viewer: CanEditTemplates) -> Response:
    form = await read_form(request)
    channel = form.text("channel")
    channel = channel if channel in CHANNEL_FIELDS else "email"
    given, errors = template_input(form, channel=channel, event_type=form.text("eventType"))
    data = validate(given, errors)
    if data is not None:
        try:
            async with runtime_of(request).transaction() as session:
                created = await service.create_template(session, data, viewer.principal.actor)
            return see_other(f"/console/templates/{created.id}?done=created")
        except EnvoiError as error:
            errors = service_errors(error, FIELDS, _ALIASES)
    return await _new_page(request, form.values(), errors, status=422)


async def editor_page(
    request: Request,
    template_id: int,
    *,
    values: dict[str, str] | None = None,
    errors: FieldErrors | None = None,
    problems: list[dict[str, str]] | None = None,
    flash: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    """The editor; after a refused save or publish, with what was typed and what is wrong."""
    async with runtime_of(request).transaction() as session:
        template = await service.get_template(session, template_id)
        versions = (await list_versions(session, [template_id]))[template_id]
        seeds = await list_seeds(session, template_id)
        layouts = await list_layouts(session) if template.channel == "email" else []
        trail = await audit.trail(session, template_id, limit=15)
    context = {
        "template": template,
        "values": values if values is not None else template_values(template),
        "errors": errors or {},
        "problems": problems or [],
        "versions": versions,
        "live": next((v.number for v in versions if v.id == template.live_version_id), None),
        "seeds": seeds,
        "layout_options": [(layout.name, layout.name) for layout in layouts] if template.channel == "email" else None,
        "trail": trail,
        "flash": flash,
    }
    return render(request, "template_edit.html", context, status=status)


@router.get("/templates/{template_id}")
async def edit_template(request: Request, template_id: TemplateId, _viewer: CanView, done: str = "") -> HTMLResponse:
    return await editor_page(request, template_id, flash=DONE.get(done))


@router.post("/templates/{template_id}")
async def save_template(request: Request, template_id: TemplateId, viewer: CanEditTemplates) -> Response:
    form = await read_form(request)
    async with runtime_of(request).transaction() as session:
        template = await service.get_template(session, template_id)
    given, errors = template_input(form, channel=template.channel, event_type=template.event_type)
    data = validate(given, errors)
    if data is not None:
        try:
            async with runtime_of(request).transaction() as session:
                await service.update_template(session, template_id, data, viewer.principal.actor)
            return see_other(f"/console/templates/{template_id}?done=saved")
        except EnvoiError as error:
            errors = service_errors(error, FIELDS, _ALIASES)
    return await editor_page(request, template_id, values=form.values(), errors=errors, status=422)
