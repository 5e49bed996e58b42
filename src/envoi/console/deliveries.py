"""Email deliveries: the list with the delivery templates, a new delivery (or template) from a template, a
delivery's page (its state in words, what stops it from going, its properties and variants, its A/B test's
figures per variant, the decision and the winner) and what an operator does to it: send now, schedule, cancel,
send the chosen variant to the rest of the audience, delete. The properties and variants forms, which the
templates' pages share, are saved by ``delivery_templates``."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Path, Request
from fastapi.responses import HTMLResponse
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from envoi.access.audit import audit
from envoi.campaigns import deliveries as service
from envoi.campaigns.ab_tests import VariantFigures, delivery_figures, send_winner
from envoi.campaigns.audiences import count_audience, list_audiences
from envoi.campaigns.models import Delivery, DeliveryState
from envoi.console.forms import FieldErrors, read_form, service_errors
from envoi.console.rendering import render
from envoi.console.routing import console_router, runtime_of, see_other
from envoi.console.session import CanManageDeliveries, CanView, Viewer
from envoi.db.base import utcnow
from envoi.errors import Conflict, EnvoiError, NotFound, ValidationFailed

router = console_router()
DeliveryId = Annotated[int, Path(ge=1, le=2**62)]
NEW_FIELDS = ("name", "label", "template", "audience")
EDITABLE_STATES = (DeliveryState.DRAFT, DeliveryState.SCHEDULED)
CHOOSING_STATES = (DeliveryState.TESTING, DeliveryState.WAITING_FOR_CHOICE)
DONE = {
    "created": "Delivery created: a draft. Choose its audience, check its variants, then send it or schedule it.",
    "created_template": "Delivery template created. New deliveries can be made from it.",
    "saved": "Properties saved.",
    "variants": "Variants saved.",
    "sent": "Sent: the emails are queued.",
    "testing": "The A/B test has started: the test variants are queued; the rest of the audience waits for the winner.",
    "scheduled": "Scheduled: it goes out at its time (within the minute).",
    "cancelled": "Cancelled: nothing more goes out.",
    "winner": "The chosen variant is queued for the rest of the audience.",
    "deleted": "Deleted.",
}
# The form field each problem's field (as the API names it) is shown next to.
_VARIANT_FIELD = re.compile(r"^variants\[(\d)\]\.(\w+)$")
_PROBLEM_FIELDS = {"audience": "audience", "testSplit": "split", "testDurationSeconds": "duration",
                   "criterion": "criterion", "winnerMode": "winner_mode", "variants": "variants"}  # fmt: skip


def base_path(delivery: Delivery) -> str:
    return f"/console/{'delivery-templates' if delivery.is_template else 'deliveries'}/{delivery.id}"


def duration_text(seconds: int) -> str:
    """4 hours as ``4h``, 90 minutes as ``1h 30m``: as the duration field reads them."""
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [f"{hours}h" if hours else "", f"{minutes}m" if minutes else "", f"{seconds}s" if seconds else ""]
    return " ".join(part for part in parts if part) or "0s"


def form_field(problem_field: str) -> str:
    if found := _VARIANT_FIELD.match(problem_field):
        return f"v{found[1]}_{found[2]}"
    return _PROBLEM_FIELDS.get(problem_field, "")


def stored_values(delivery: Delivery) -> dict[str, str]:
    """The properties and variants forms, filled with what is stored."""
    values = {
        "label": delivery.label,
        "audience": str(delivery.audience_id or ""),
        "notifications": "yes" if delivery.notifications else "",
        "criterion": delivery.criterion,
        "duration": duration_text(delivery.test_duration_seconds),
        "winner_mode": delivery.winner_mode,
    }
    values |= {f"split_{'ABC'[i]}": str(share) for i, share in enumerate(delivery.test_split[:3])}
    for index, variant in enumerate(delivery.variants):
        values |= {f"v{index}_{key}": str(variant.get(key) or "") for key in ("from", "replyTo", "subject", "html",
                                                                            "text")}  # fmt: skip
    return values


def _percent(rate: Any) -> str:
    return f"{float(rate) * 100:.1f} %"


def _figures_rows(figures: list[VariantFigures]) -> list[dict[str, Any]]:
    return [
        {
            "variant": f.variant,
            "recipients": f.recipients,
            "sent": f.sent,
            "opens": f.opens,
            "clicks": f.clicks,
            "unsubscriptions": f.unsubscriptions,
            "open_rate": _percent(f.open_rate),
            "click_rate": _percent(f.click_rate),
            "unsubscription_rate": _percent(f.unsubscription_rate),
        }
        for f in figures
    ]


@router.get("/deliveries")
async def deliveries(request: Request, _viewer: CanView, done: str = "") -> HTMLResponse:
    async with runtime_of(request).transaction() as session:
        found = await service.list_deliveries(session)
        templates = await service.list_deliveries(session, templates=True)
        audiences = {audience.id: audience for audience in await list_audiences(session)}
    context = {"deliveries": found, "templates": templates, "audiences": audiences, "flash": DONE.get(done)}
    return render(request, "deliveries/list.html", context)


async def _new_page(
    request: Request, values: dict[str, str], errors: FieldErrors | None = None, status: int = 200
) -> HTMLResponse:
    async with runtime_of(request).transaction() as session:
        templates = await service.list_deliveries(session, templates=True)
        audiences = await list_audiences(session)
    options = [(str(t.id), f"{t.label} ({t.name}{', factory' if t.factory else ''})") for t in templates]
    if not values.get("template"):
        values["template"] = next((str(t.id) for t in templates if t.name == service.FACTORY_TEMPLATE), "")
    audience_options = [("", "Choose later")] + [(str(a.id), f"{a.label} ({a.name})") for a in audiences]
    context = {"values": values, "errors": errors or {}, "template_options": options,
               "audience_options": audience_options}  # fmt: skip
    return render(request, "deliveries/new.html", context, status=status)


@router.get("/deliveries/new")
async def new_delivery(
    request: Request, _viewer: CanManageDeliveries, template: str = "", kind: str = "delivery"
) -> HTMLResponse:
    return await _new_page(request, {"template": template, "is_template": "yes" if kind == "template" else ""})


def _an_id(value: str) -> int | None:
    return int(value) if value.isdecimal() and 1 <= int(value) <= 2**62 else None


@router.post("/deliveries/new")
async def create_delivery(request: Request, viewer: CanManageDeliveries) -> Response:
    form = await read_form(request)
    name, label, template, audience = (form.text(key) for key in ("name", "label", "template", "audience"))
    is_template = form.text("is_template") == "yes"
    errors: FieldErrors = {}
    if template and _an_id(template) is None:
        errors["template"] = "Choose a template in the list."
    if audience and _an_id(audience) is None:
        errors["audience"] = "Choose an audience in the list."
    if len(label) > 200:
        errors["label"] = "A label has at most 200 characters."
    fields: dict[str, Any] = {"label": label} if label else {}
    if audience:
        fields["audience_id"] = _an_id(audience)
    if not errors:
        kind = "delivery_template" if is_template else "delivery"
        try:
            async with runtime_of(request).transaction() as session:
                made = await service.create_delivery(
                    session, name=name, template_id=_an_id(template) if template else None, fields=fields,
                    actor=viewer.principal.actor, is_template=is_template,
                )  # fmt: skip
                audit(session, viewer.principal, "created", kind, made.id, {"name": made.name})
            return see_other(f"{base_path(made)}?done={'created_template' if is_template else 'created'}")
        except EnvoiError as error:
            if isinstance(error, NotFound):  # the factory template is gone: nothing the form can fix
                raise
            errors = service_errors(error, NEW_FIELDS)
    return await _new_page(request, form.values(), errors, status=422)


async def delivery_page(
    request: Request,
    delivery_id: int,
    *,
    template: bool = False,
    values: dict[str, str] | None = None,
    errors: FieldErrors | None = None,
    flash: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    """A delivery's (or template's) page; after a refused change, with what was typed and what is wrong."""
    runtime = runtime_of(request)
    async with runtime.transaction() as session:
        delivery = await service.find_delivery(session, delivery_id, template=template)
        audiences = await list_audiences(session)
        source = await session.get(Delivery, delivery.template_id) if delivery.template_id else None
        figures = await delivery_figures(session, delivery.id) if delivery.launched_at else []
        audience = next((a for a in audiences if a.id == delivery.audience_id), None)
        reach = None
        if audience is not None and delivery.state in EDITABLE_STATES:
            try:
                reach = (await count_audience(session, audience.filters))["reachable"]
            except EnvoiError:  # its filters no longer validate: the audience page says why
                reach = None
    editable = template or delivery.state in EDITABLE_STATES
    problems = [] if template or not editable else service.delivery_problems(delivery, runtime.settings)
    rest = next((f for f in figures if f.variant is None), None)
    context = {
        "delivery": delivery,
        "base": base_path(delivery),
        "template": template,
        "editable": editable,
        "source": source,
        "audience": audience,
        "audience_options": [("", "None chosen")] + [(str(a.id), f"{a.label} ({a.name})") for a in audiences],
        "reach": reach,
        "problems": [{"field": f, "message": m, "form_field": form_field(f)} for f, m in problems],
        "notes": {form_field(f): m for f, m in reversed(problems) if form_field(f)},
        "figures": _figures_rows(figures),
        "remaining": rest.recipients if rest else 0,
        "choosing": delivery.state in CHOOSING_STATES,
        "values": stored_values(delivery) | (values or {}),
        "errors": errors or {},
        "duration": duration_text(delivery.test_duration_seconds),
        "flash": flash,
    }
    return render(request, "deliveries/page.html", context, status=status)


@router.get("/deliveries/{delivery_id}")
async def delivery_detail(
    request: Request, delivery_id: DeliveryId, _viewer: CanView, done: str = "", queued: int | None = None
) -> HTMLResponse:
    flash = DONE.get(done)
    if flash and queued is not None:
        flash += f" ({queued:,} email{'s' if queued != 1 else ''} queued now.)"
    return await delivery_page(request, delivery_id, flash=flash)


Action = Callable[[AsyncSession, Delivery], Awaitable[tuple[str, dict[str, Any]]]]


async def _act(request: Request, delivery_id: int, viewer: Viewer, action: Action, *, lock: bool = True) -> Response:
    """Do ``action`` (which returns what the audit log records and its details) in one transaction; a refusal is
    shown on the page, with each problem next to its field."""
    try:
        async with runtime_of(request).transaction() as session:
            delivery = await service.find_delivery(session, delivery_id, lock=lock)
            audited, details = await action(session, delivery)
            audit(session, viewer.principal, audited, "delivery", delivery_id, details)
            state = delivery.state
    except (ValidationFailed, Conflict) as refused:
        errors = {form_field(str(p.get("field", ""))): str(p.get("message", "")) for p in
                  refused.details.get("errors", [])}  # fmt: skip
        errors.pop("", None)
        if name := "at" if refused.field == "at" else form_field(refused.field or ""):
            errors.setdefault(name, refused.message)
        errors[""] = f"Nothing was done: {refused.message}."
        return await delivery_page(request, delivery_id, errors=errors, status=refused.status_code)
    if audited == "sent":
        done = "testing" if state == DeliveryState.TESTING else "sent"
    else:
        done = {"scheduled": "scheduled", "cancelled": "cancelled", "winner_chosen": "winner"}[audited]
    queued = f"&queued={details['queued']}" if "queued" in details else ""
    return see_other(f"/console/deliveries/{delivery_id}?done={done}{queued}")


@router.post("/deliveries/{delivery_id}/send")
async def send_now(request: Request, delivery_id: DeliveryId, viewer: CanManageDeliveries) -> Response:
    """Fix the recipients and queue the emails (the test variants first, for an A/B test)."""
    settings = runtime_of(request).settings

    async def send(session: AsyncSession, delivery: Delivery) -> tuple[str, dict[str, Any]]:
        return "sent", {"queued": await service.launch_delivery(session, settings, delivery, utcnow())}

    return await _act(request, delivery_id, viewer, send)


@router.post("/deliveries/{delivery_id}/schedule")
async def schedule(request: Request, delivery_id: DeliveryId, viewer: CanManageDeliveries) -> Response:
    """At a time in UTC (the field is a browser's datetime-local, without a time zone)."""
    typed = (await read_form(request)).text("at")
    try:
        at = datetime.fromisoformat(typed).replace(tzinfo=UTC) if typed else None
    except ValueError:
        at = None
    settings = runtime_of(request).settings

    async def plan(session: AsyncSession, delivery: Delivery) -> tuple[str, dict[str, Any]]:
        if at is None or at <= utcnow():
            raise ValidationFailed("choose a time in the future (UTC)", field="at")
        await service.schedule_delivery(session, settings, delivery, at)
        return "scheduled", {"at": at.isoformat()}

    return await _act(request, delivery_id, viewer, plan)


@router.post("/deliveries/{delivery_id}/cancel")
async def cancel(request: Request, delivery_id: DeliveryId, viewer: CanManageDeliveries) -> Response:
    async def stop(session: AsyncSession, delivery: Delivery) -> tuple[str, dict[str, Any]]:
        return "cancelled", {"not_sent": await service.cancel_delivery(session, delivery, utcnow())}

    return await _act(request, delivery_id, viewer, stop)


@router.post("/deliveries/{delivery_id}/winner")
async def choose_winner(request: Request, delivery_id: DeliveryId, viewer: CanManageDeliveries) -> Response:
    """Send the chosen variant to the rest of the audience: when the test waits for a choice, or to end it early."""
    variant = (await read_form(request)).text("variant")
    actor = viewer.principal.actor

    async def choose(session: AsyncSession, delivery: Delivery) -> tuple[str, dict[str, Any]]:
        queued = await send_winner(session, delivery, variant, chosen_by=actor, now=utcnow())
        return "winner_chosen", {"variant": variant, "queued": queued}

    return await _act(request, delivery_id, viewer, choose)


async def delete(request: Request, delivery_id: int, viewer: Viewer, *, template: bool) -> Response:
    try:
        async with runtime_of(request).transaction() as session:
            delivery = await service.find_delivery(session, delivery_id, template=template, lock=True)
            await service.delete_delivery(session, delivery)
            kind = "delivery_template" if template else "delivery"
            audit(session, viewer.principal, "deleted", kind, delivery_id, {"name": delivery.name})
    except Conflict as conflict:
        errors = {"": f"Nothing was deleted: {conflict.message}."}
        return await delivery_page(request, delivery_id, template=template, errors=errors, status=409)
    return see_other("/console/deliveries?done=deleted")


@router.post("/deliveries/{delivery_id}/delete")
async def delete_delivery(request: Request, delivery_id: DeliveryId, viewer: CanManageDeliveries) -> Response:
    return await delete(request, delivery_id, viewer, template=False)
