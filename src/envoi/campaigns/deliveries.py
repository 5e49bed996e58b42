"""Email deliveries and delivery templates: create from a template, edit while a draft, send now or at a time,
cancel. Launching fixes who gets what (see ``ab_tests``) and queues one marketing event per recipient.
Services never commit."""

from __future__ import annotations

import re
import secrets
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from envoi.campaigns.ab_tests import assign_variants, queue_recipients
from envoi.campaigns.audiences import audience_condition
from envoi.campaigns.content import content_problems, split_problems, test_problems
from envoi.campaigns.models import Audience, Delivery, DeliveryRecipient, DeliveryState, Profile
from envoi.errors import Conflict, NotFound, Problem, ValidationFailed, invalid
from envoi.settings import Settings

FACTORY_TEMPLATE = "email"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,99}$")
_EDITABLE = {
    "label",
    "audience_id",
    "notifications",
    "variants",
    "test_split",
    "criterion",
    "test_duration_seconds",
    "winner_mode",
    "seed",
}
_COPIED = _EDITABLE - {"seed"}
_CHUNK = 1000
_RECIPIENTS = cast(Table, DeliveryRecipient.__table__)


async def list_deliveries(session: AsyncSession, *, templates: bool = False, limit: int = 200) -> list[Delivery]:
    query = select(Delivery).where(Delivery.is_template.is_(templates)).order_by(Delivery.id.desc()).limit(limit)
    return list(await session.scalars(query))


async def find_delivery(
    session: AsyncSession, delivery_id: int, *, template: bool = False, lock: bool = False
) -> Delivery:
    query = select(Delivery).where(Delivery.id == delivery_id, Delivery.is_template.is_(template))
    delivery = await session.scalar(query.with_for_update() if lock else query)
    if delivery is None:
        raise NotFound(f"{'delivery template' if template else 'delivery'} {delivery_id} does not exist")
    return delivery


async def create_delivery(
    session: AsyncSession,
    *,
    name: str,
    template_id: int | None,
    fields: dict[str, Any],
    actor: str,
    is_template: bool = False,
) -> Delivery:
    """A draft copied from a template (the factory "Email" one by default), with ``fields`` changed. It inherits
    the template's notifications setting unless ``fields`` says otherwise."""
    if not _NAME.match(name):
        raise ValidationFailed("a name is 1 to 100 lowercase letters, digits, - or _", field="name")
    taken = await session.scalar(
        select(Delivery.id).where(Delivery.is_template.is_(is_template), Delivery.name == name)
    )
    if taken is not None:
        raise Conflict(f"a delivery {'template ' if is_template else ''}named {name!r} exists", field="name")
    if template_id is None:
        source = await session.scalar(select(Delivery).where(Delivery.is_template, Delivery.name == FACTORY_TEMPLATE))
        if source is None:
            raise NotFound("the factory delivery template is missing: run envoi migrate")
    else:
        try:
            source = await find_delivery(session, template_id, template=True)
        except NotFound as error:
            raise ValidationFailed(error.message, field="template") from None
    values = {key: getattr(source, key) for key in _COPIED} | await _checked(session, fields)
    delivery = Delivery(
        name=name,
        is_template=is_template,
        template_id=source.id,
        state=DeliveryState.DRAFT,
        created_by=actor,
        seed=values.pop("seed") if values.get("seed") is not None else secrets.randbelow(2**31),
        **values,
    )
    session.add(delivery)
    await session.flush()
    return delivery


async def update_delivery(
    session: AsyncSession, delivery: Delivery, fields: dict[str, Any], settings: Settings
) -> Delivery:
    if not delivery.is_template and delivery.state not in (DeliveryState.DRAFT, DeliveryState.SCHEDULED):
        raise Conflict(f"the delivery is {delivery.state}: only a draft can be changed", field="state")
    for key, value in (await _checked(session, fields)).items():
        setattr(delivery, key, value)
    if delivery.state == DeliveryState.SCHEDULED:  # what was checked when it was scheduled may no longer hold
        _refuse_problems(delivery, settings)
    await session.flush()
    return delivery


async def delete_delivery(session: AsyncSession, delivery: Delivery) -> None:
    if delivery.factory:
        raise Conflict("the factory delivery templates cannot be deleted", field="factory")
    if not delivery.is_template and delivery.state not in (DeliveryState.DRAFT, DeliveryState.CANCELLED):
        raise Conflict(f"the delivery is {delivery.state}: cancel it, or keep it for its figures", field="state")
    await session.delete(delivery)


async def _checked(session: AsyncSession, fields: dict[str, Any]) -> dict[str, Any]:
    values = {k: v for k, v in fields.items() if k in _EDITABLE}
    audience_id = values.get("audience_id")
    if audience_id is not None and await session.get(Audience, audience_id) is None:
        raise ValidationFailed(f"audience {audience_id} does not exist", field="audience")
    return values


def delivery_problems(delivery: Delivery, settings: Settings) -> list[Problem]:
    """Everything that stops this delivery from being sent, each naming its field (empty: it can go)."""
    problems = content_problems(delivery.variants) + test_problems(delivery, settings.ab_test_min_duration_seconds)
    if delivery.audience_id is None:
        problems.append(("audience", "choose the audience it goes to"))
    return problems


def _refuse_problems(delivery: Delivery, settings: Settings) -> None:
    if problems := delivery_problems(delivery, settings):
        raise invalid(problems)


async def schedule_delivery(session: AsyncSession, settings: Settings, delivery: Delivery, at: datetime) -> None:
    """Sent by the ``email_deliveries`` technical workflow once ``at`` has come (within its minute)."""
    _must_be_draft(delivery)
    _refuse_problems(delivery, settings)
    delivery.state, delivery.scheduled_at = DeliveryState.SCHEDULED, at


async def cancel_delivery(session: AsyncSession, delivery: Delivery, now: datetime) -> int:
    """Nothing more goes out: emails queued but not sent yet end ``ignored``; returns how many recipients were
    not even queued (the rest of an A/B test's audience)."""
    if delivery.is_template or delivery.state == DeliveryState.CANCELLED:
        raise Conflict(
            "a delivery template is never sent" if delivery.is_template else "it is cancelled already", field="state"
        )
    left = await session.scalar(
        select(func.count())
        .select_from(DeliveryRecipient)
        .where(DeliveryRecipient.delivery_id == delivery.id, DeliveryRecipient.queued_at.is_(None))
    )
    delivery.state, delivery.decided_at = DeliveryState.CANCELLED, now
    return left or 0


def _must_be_draft(delivery: Delivery) -> None:
    if delivery.is_template:
        raise Conflict("a delivery template is never sent: create a delivery from it", field="template")
    if delivery.state not in (DeliveryState.DRAFT, DeliveryState.SCHEDULED):
        raise Conflict(f"the delivery is {delivery.state} already", field="state")


async def launch_delivery(session: AsyncSession, settings: Settings, delivery: Delivery, now: datetime) -> int:
    """Fix the recipients (the audience's subscribed profiles with an email, now), queue the test variants (or
    the only variant) and start the test. Returns how many emails were queued."""
    _must_be_draft(delivery)
    _refuse_problems(delivery, settings)
    audience = await session.get(Audience, delivery.audience_id)
    if audience is None:
        raise ValidationFailed("the audience was deleted: choose another", field="audience")
    rows = (
        await session.execute(
            select(Profile.id)
            .where(audience_condition(audience.filters), Profile.subscribed.is_(True), Profile.email.is_not(None))
            .order_by(Profile.id)
        )
    ).scalars()
    profile_ids = list(rows)
    if not profile_ids:
        raise ValidationFailed(
            f"the audience '{audience.label}' has nobody to send to (subscribed, with an email)", field="audience"
        )
    testing = len(delivery.variants) > 1
    if testing and (problems := split_problems(delivery.test_split, len(profile_ids))):
        raise invalid(problems)
    groups = assign_variants(profile_ids, delivery.test_split, delivery.seed) if testing else {}
    for start in range(0, len(profile_ids), _CHUNK):
        chunk = [
            {"delivery_id": delivery.id, "profile_id": pid, "variant": groups.get(pid) if testing else "A"}
            for pid in profile_ids[start : start + _CHUNK]
        ]
        await session.execute(insert(_RECIPIENTS), chunk)  # the table, not the ORM: a hundred thousand rows
    queued = await queue_recipients(session, delivery, now, test_groups=True)
    delivery.launched_at, delivery.decision = now, None  # a refused earlier attempt's reason no longer holds
    if testing:
        delivery.state = DeliveryState.TESTING
        delivery.test_ends_at = now + timedelta(seconds=delivery.test_duration_seconds)
    else:
        delivery.state, delivery.winner, delivery.decided_at = DeliveryState.SENT, "A", now
    return queued
