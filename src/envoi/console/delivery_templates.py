"""A delivery template's page (a delivery's page without state, figures or sending), and the two forms that
deliveries and their templates share: the properties (label, audience, notifications, the A/B test's split,
criterion, duration and winner mode) and the variants editor (add or remove a variant, up to three)."""

from __future__ import annotations

import re
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from pydantic import ValidationError
from starlette.responses import Response

from envoi.access.audit import audit
from envoi.campaigns import deliveries as service
from envoi.campaigns.content import VARIANT_NAMES
from envoi.campaigns.models import Criterion, WinnerMode
from envoi.campaigns.schemas import Variant
from envoi.console.deliveries import DONE, DeliveryId, base_path, delete, delivery_page, form_field
from envoi.console.forms import FieldErrors, Form, read_form, service_errors
from envoi.console.routing import console_router, runtime_of, see_other
from envoi.console.session import CanManageDeliveries, CanView, Viewer
from envoi.errors import Conflict, ValidationFailed

router = console_router()
PROPERTY_FIELDS = ("label", "audience", "notifications", "split", "criterion", "duration", "winner_mode")
VARIANT_KEYS = ("from", "replyTo", "subject", "html", "text")
MAX_DURATION = 90 * 86400
_DURATION = re.compile(r"^(?:(\d+)\s*h)?\s*(?:(\d+)\s*m)?\s*(?:(\d+)\s*s)?$")
_DEFAULT_SHARE = 10


def parse_duration(typed: str) -> int | None:
    """``4h``, ``1h 30m``, ``90s``, or a number of hours (``1.5``); None when it reads as none of them."""
    typed = typed.strip().lower()
    try:
        return round(float(typed) * 3600)
    except ValueError:
        pass
    found = _DURATION.match(typed)
    if not typed or found is None:
        return None
    hours, minutes, seconds = (int(part or 0) for part in found.groups())
    return hours * 3600 + minutes * 60 + seconds


def parse_properties(form: Form, variants: int) -> tuple[dict[str, Any], FieldErrors]:
    """The changes the properties form asks for; the A/B test's settings only when there is a test."""
    errors: FieldErrors = {}
    label, audience = form.text("label"), form.text("audience")
    if not label or len(label) > 200:
        errors["label"] = "Write a label of 1 to 200 characters: what operators read."
    if audience and not (audience.isdecimal() and int(audience) <= 2**62):
        errors["audience"] = "Choose an audience in the list."
    changes: dict[str, Any] = {
        "label": label,
        "audience_id": int(audience) if audience.isdecimal() else None,
        "notifications": form.text("notifications") == "yes",
    }
    if variants < 2:
        return changes, errors
    shares = [form.text(f"split_{name}") for name in VARIANT_NAMES[:variants]]
    if not all(share.isdecimal() and 1 <= int(share) <= 99 for share in shares):
        errors["split"] = "Give each variant a whole percentage of the audience, from 1 to 99."
    else:
        changes["test_split"] = [int(share) for share in shares]
    changes["criterion"] = form.text("criterion")
    if changes["criterion"] not in set(Criterion):
        errors["criterion"] = "Choose a criterion in the list."
    duration = parse_duration(form.text("duration"))
    if duration is None or not 1 <= duration <= MAX_DURATION:
        errors["duration"] = "Write a duration such as 4h, 1h 30m or 90m, of at most 90 days."
    changes["test_duration_seconds"] = duration
    changes["winner_mode"] = form.text("winner_mode")
    if changes["winner_mode"] not in set(WinnerMode):
        errors["winner_mode"] = "Choose automatic or manual."
    return changes, errors


def parse_variants(form: Form, stored: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], FieldErrors]:
    """The variants as typed (each checked as the API checks it), with one added or removed if asked."""
    count = form.text("count")
    count_shown = int(count) if count.isdecimal() and 1 <= int(count) <= len(VARIANT_NAMES) else len(stored)
    errors: FieldErrors = {}
    variants: list[dict[str, Any]] = []
    change = form.text("change")
    removed = int(change[7:]) if change.startswith("remove:") and change[7:].isdecimal() and count_shown > 1 else None
    for index in range(count_shown):
        if index == removed:  # going away: what it holds does not matter
            continue
        typed: dict[str, Any] = {"name": VARIANT_NAMES[len(variants)]}
        for key in VARIANT_KEYS:
            typed[key] = form.raw(f"v{index}_{key}") if key in ("html", "text") else form.text(f"v{index}_{key}")
        if index < len(stored) and stored[index].get("mjml"):  # not edited here: kept as it is
            typed["mjml"] = stored[index]["mjml"]
        try:
            variants.append(Variant.model_validate({k: v for k, v in typed.items() if v}).stored())
        except ValidationError as error:
            for problem in error.errors():
                key = str(problem["loc"][0]) if problem["loc"] else "subject"
                message = "Required." if problem["type"] == "missing" else problem["msg"]
                errors.setdefault(f"v{index}_{key}", message)
            variants.append(typed)
    if change == "add" and variants and len(variants) < len(VARIANT_NAMES):
        variants.append(dict(variants[-1]) | {"name": VARIANT_NAMES[len(variants)]})
    return variants, errors


def _split_for(split: list[int], count: int) -> list[int]:
    """The test's shares after a variant was added or removed: one per variant, a new one 10 %."""
    if count < 2:
        return []
    return (list(split) + [_DEFAULT_SHARE] * count)[:count]


async def save_properties(request: Request, delivery_id: int, viewer: Viewer, *, template: bool) -> Response:
    form = await read_form(request)
    async with runtime_of(request).transaction() as session:
        variants = len((await service.find_delivery(session, delivery_id, template=template)).variants)
    changes, errors = parse_properties(form, variants)
    if not errors:
        try:
            async with runtime_of(request).transaction() as session:
                delivery = await service.find_delivery(session, delivery_id, template=template, lock=True)
                await service.update_delivery(session, delivery, changes, runtime_of(request).settings)
                kind = "delivery_template" if template else "delivery"
                audit(session, viewer.principal, "updated", kind, delivery_id, {"fields": sorted(changes)})
            return see_other(f"{base_path(delivery)}?done=saved")
        except (ValidationFailed, Conflict) as error:
            errors = _refusal(error)
    errors.setdefault("", "Nothing was saved: correct what is marked below.")
    values = {name: form.text(name) for name in (*PROPERTY_FIELDS, "split_A", "split_B", "split_C")}
    return await delivery_page(request, delivery_id, template=template, values=values, errors=errors, status=422)


def _refusal(error: ValidationFailed | Conflict) -> FieldErrors:
    """The service's refusal, each problem next to its form field."""
    errors = service_errors(error, [*PROPERTY_FIELDS, "state"], {"audience_id": "audience"})
    for problem in error.details.get("errors", []):
        if name := form_field(str(problem.get("field", ""))):
            errors.setdefault(name, str(problem.get("message", "")))
    if "state" in errors:
        errors[""] = f"Nothing was saved: {errors.pop('state')}."
    return errors


async def save_variants(request: Request, delivery_id: int, viewer: Viewer, *, template: bool) -> Response:
    form = await read_form(request)
    async with runtime_of(request).transaction() as session:
        stored = await service.find_delivery(session, delivery_id, template=template)
        stored_variants, stored_split = stored.variants, stored.test_split
    variants, errors = parse_variants(form, stored_variants)
    if not errors:
        changes: dict[str, Any] = {"variants": variants}
        if len(variants) != len(stored_split) and (len(variants) > 1 or stored_split):
            split, change = list(stored_split), form.text("change")
            if change.startswith("remove:") and change[7:].isdecimal() and int(change[7:]) < len(split):
                del split[int(change[7:])]  # the removed variant's share goes with it
            changes["test_split"] = _split_for(split, len(variants))
        try:
            async with runtime_of(request).transaction() as session:
                delivery = await service.find_delivery(session, delivery_id, template=template, lock=True)
                await service.update_delivery(session, delivery, changes, runtime_of(request).settings)
                kind = "delivery_template" if template else "delivery"
                audit(session, viewer.principal, "updated", kind, delivery_id, {"fields": sorted(changes)})
            return see_other(f"{base_path(delivery)}?done=variants#variants")
        except (ValidationFailed, Conflict) as error:
            errors = _refusal(error)
    errors.setdefault("", "The variants were not saved: correct what is marked below.")
    values = {f"v{i}_{key}": form.raw(f"v{i}_{key}") for i in range(len(VARIANT_NAMES)) for key in VARIANT_KEYS}
    return await delivery_page(request, delivery_id, template=template, values=values, errors=errors, status=422)


@router.post("/deliveries/{delivery_id}/properties")
async def delivery_properties(request: Request, delivery_id: DeliveryId, viewer: CanManageDeliveries) -> Response:
    return await save_properties(request, delivery_id, viewer, template=False)


@router.post("/deliveries/{delivery_id}/variants")
async def delivery_variants(request: Request, delivery_id: DeliveryId, viewer: CanManageDeliveries) -> Response:
    return await save_variants(request, delivery_id, viewer, template=False)


@router.get("/delivery-templates/{template_id}")
async def template_detail(request: Request, template_id: DeliveryId, _viewer: CanView, done: str = "") -> HTMLResponse:
    return await delivery_page(request, template_id, template=True, flash=DONE.get(done))


@router.post("/delivery-templates/{template_id}/properties")
async def template_properties(request: Request, template_id: DeliveryId, viewer: CanManageDeliveries) -> Response:
    return await save_properties(request, template_id, viewer, template=True)


@router.post("/delivery-templates/{template_id}/variants")
async def template_variants(request: Request, template_id: DeliveryId, viewer: CanManageDeliveries) -> Response:
    return await save_variants(request, template_id, viewer, template=True)


@router.post("/delivery-templates/{template_id}/delete")
async def delete_template(request: Request, template_id: DeliveryId, viewer: CanManageDeliveries) -> Response:
    return await delete(request, template_id, viewer, template=True)
