"""Telling a delivery's creator and every operator who edited it that its A/B test chose a winner, or that
one of them must choose (a delivery whose notifications are off tells nobody), or that it could not be sent at
its time (always told)."""

from __future__ import annotations

from urllib.parse import quote

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from envoi.access.models import AuditEntry, Operator
from envoi.campaigns.models import Delivery
from envoi.errors import ValidationFailed
from envoi.notifications.email import EmailCopy
from envoi.notifications.objects import ObjectRef, register_object
from envoi.notifications.service import Category, Recipients, notify
from envoi.settings import Settings

_EDITS = ("created", "updated")


async def _delivery_roles(session: AsyncSession, object_id: str) -> list[Operator]:
    """Its creator and editors: the operators the audit log names for its creation and changes."""
    if not object_id.isdigit():
        raise ValidationFailed(f"a delivery id is a number, not {object_id!r}", field="roles")
    editors = select(AuditEntry.operator_id).where(
        AuditEntry.object_type == "delivery",
        AuditEntry.object_id == object_id,
        AuditEntry.action.in_(_EDITS),
        AuditEntry.operator_id.is_not(None),
    )
    rows = await session.scalars(
        select(Operator).where(Operator.active.is_(True), Operator.id.in_(editors)).order_by(Operator.id)
    )
    return list(rows)


register_object("delivery", link=lambda object_id: f"/console/deliveries/{quote(object_id)}", roles=_delivery_roles)


async def _tell(
    session: AsyncSession,
    settings: Settings,
    delivery: Delivery,
    category: Category,
    title: str,
    body: str,
    *,
    always: bool = False,
) -> int:
    if not (delivery.notifications or always):
        return 0
    sent = await notify(
        session,
        Recipients(roles_of=[ObjectRef("delivery", str(delivery.id))]),
        category=category,
        title=title,
        body=body,
        about=ObjectRef("delivery", str(delivery.id)),
        email=EmailCopy.of(settings),
    )
    return len(sent)


async def tell_winner(session: AsyncSession, settings: Settings, delivery: Delivery, queued: int) -> int:
    return await _tell(
        session,
        settings,
        delivery,
        Category.INFO,
        f"Variant {delivery.winner} of '{delivery.label}' was selected",
        f"The A/B test of the email '{delivery.label}' (id {delivery.id}) has ended: {delivery.decision}. "
        f"Variant {delivery.winner} is being sent to the remaining {queued:,} recipients.",
    )


async def tell_choice_needed(session: AsyncSession, settings: Settings, delivery: Delivery, waiting: int) -> int:
    return await _tell(
        session,
        settings,
        delivery,
        Category.ACTION_REQUIRED,
        f"A variant of '{delivery.label}' must be selected",
        f"The A/B test of the email '{delivery.label}' (id {delivery.id}) has ended: {delivery.decision}. "
        f"Choose the variant for the remaining {waiting:,} recipients: nothing is sent to them until you do.",
    )


async def tell_launch_refused(session: AsyncSession, settings: Settings, delivery: Delivery) -> int:
    """Always told, whatever its notifications setting: they believe it went out."""
    return await _tell(
        session,
        settings,
        delivery,
        Category.ACTION_REQUIRED,
        f"'{delivery.label}' was not sent",
        f"The email '{delivery.label}' (id {delivery.id}) was scheduled but {delivery.decision}. It is a draft "
        "again: fix it, then send it or schedule it anew.",
        always=True,
    )
