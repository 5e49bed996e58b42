"""What the worker adds for profiles and marketing emails: the profile an event was reconciled with (what
templates see as ``profile``), a delivery variant's email as the event's route, and, on a marketing email,
tracked links, an open pixel, an unsubscribe link and the one-click ``List-Unsubscribe`` headers (RFC 8058).
Transactional emails get none of these."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from html import escape
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from envoi.campaigns.content import variant_design
from envoi.campaigns.models import Delivery, DeliveryState, Profile
from envoi.channels.base import EmailMessage
from envoi.delivery.claim import ClaimedEvent
from envoi.settings import Settings
from envoi.templates.service import LiveRoute
from envoi.tracking.links import make_token, track_html, unsubscribe_headers, unsubscribe_url
from envoi.tracking.secret import tracking_secret

_SENDING = (DeliveryState.TESTING, DeliveryState.WAITING_FOR_CHOICE, DeliveryState.SENT)


@dataclass(slots=True)
class MarketingContext:
    routes: dict[tuple[int, str], LiveRoute] = field(default_factory=dict)  # (delivery, variant) -> its email
    deliveries: dict[int, dict[str, Any]] = field(default_factory=dict)  # what templates see as ``delivery``
    cancelled: set[int] = field(default_factory=set)
    profiles: dict[int, dict[str, Any]] = field(default_factory=dict)  # what templates see as ``profile``
    unsubscribed: set[int] = field(default_factory=set)
    secret: bytes = b""


def profile_variables(profile: Profile) -> dict[str, Any]:
    return {
        "id": profile.id,
        "email": profile.email,
        "phone": profile.phone,
        "firstName": profile.first_name,
        "lastName": profile.last_name,
        "language": profile.language,
        "externalId": profile.external_id,
        "attributes": profile.attributes or {},
        "subscribed": profile.subscribed,
    }


async def load_marketing(session: AsyncSession, settings: Settings, events: list[ClaimedEvent]) -> MarketingContext:
    context = MarketingContext()
    profile_ids = {e.profile_id for e in events if e.profile_id is not None}
    if profile_ids:
        for profile in await session.scalars(select(Profile).where(Profile.id.in_(profile_ids))):
            context.profiles[profile.id] = profile_variables(profile)
            if not profile.subscribed:
                context.unsubscribed.add(profile.id)
    delivery_ids = {e.delivery_id for e in events if e.delivery_id is not None}
    if not delivery_ids:
        return context
    for delivery in await session.scalars(select(Delivery).where(Delivery.id.in_(delivery_ids))):
        if delivery.state not in _SENDING:
            context.cancelled.add(delivery.id)
        context.deliveries[delivery.id] = {"id": delivery.id, "name": delivery.name, "label": delivery.label}
        for variant in delivery.variants:
            design = variant_design(variant)
            key = (delivery.id, variant["name"])
            context.routes[key] = LiveRoute(None, "live", None, design.as_version(), key=("delivery", *key))
    context.secret = await tracking_secret(session, settings)
    return context


def delivery_variables(event: ClaimedEvent, context: MarketingContext, settings: Settings) -> dict[str, Any]:
    assert event.delivery_id is not None
    token = make_token(event.id, context.secret)
    return context.deliveries.get(event.delivery_id, {}) | {
        "variant": event.variant,
        "unsubscribeUrl": unsubscribe_url(settings.public_url, token),
    }


def finish_marketing_email(
    message: EmailMessage, event: ClaimedEvent, context: MarketingContext, settings: Settings
) -> EmailMessage:
    """Tracked links and an open pixel; an unsubscribe link in the body unless the content has one; the
    one-click unsubscribe headers."""
    base, token = settings.public_url, make_token(event.id, context.secret)
    unsubscribe = unsubscribe_url(base, token)
    html, text = message.html, message.text
    if html is not None:
        if unsubscribe not in html:
            footer = (
                '<p style="font-size:12px;color:#666">You receive this email because you subscribed. '
                f'<a href="{escape(unsubscribe)}">Unsubscribe</a></p>'
            )
            at = html.lower().rfind("</body>")
            html = html[:at] + footer + html[at:] if at >= 0 else html + footer
        html = track_html(html, base_url=base, token=token, secret=context.secret)
    if text is not None and unsubscribe not in text:
        text = f"{text.rstrip()}\n\n--\nUnsubscribe: {unsubscribe}\n"
    headers = {**message.headers, **unsubscribe_headers(base, token)}
    return dataclasses.replace(message, html=html, text=text, headers=headers)
