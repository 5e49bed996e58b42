"""The email copy of a notification: an event of the internal type ``envoi_notification``, rendered by its
published template and delivered by the worker like any other (to the outbox while no SMTP server is set).

The type and its template are created the first time a copy is sent, not at startup: a new installation's
event types stay the user's own until Envoi has something to send. Once created, the template is the
operators' to restyle; Envoi never overwrites it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from envoi.access.models import Operator
from envoi.errors import ValidationFailed
from envoi.events.models import EventType
from envoi.events.schemas import EventIn, EventTypeIn
from envoi.events.service import ingest_event
from envoi.events.types import create_event_type
from envoi.notifications.models import Notification
from envoi.settings import Settings
from envoi.templates.schemas import TemplateIn
from envoi.templates.service import create_template
from envoi.templates.versions import publish_template

log = structlog.get_logger(__name__)

EVENT_TYPE = "envoi_notification"
_LOCK = 0x656E766F  # pg_advisory_xact_lock key: one process creates the type and its template
_FIELDS = ("name", "title", "body", "category", "url")

_HTML = """<p>Hello {{ ctx.name }},</p>
<p><strong>{{ ctx.title }}</strong></p>
<p>{{ ctx.body }}</p>
{% if ctx.url %}<p><a href="{{ ctx.url }}">Open it in the Envoi console</a></p>{% endif %}
<p style="color: #888; font-size: 12px">You receive this because you are an operator of Envoi.</p>"""
_TEXT = """Hello {{ ctx.name }},

{{ ctx.title }}

{{ ctx.body }}
{% if ctx.url %}
Open it in the Envoi console: {{ ctx.url }}
{% endif %}"""


@dataclass(frozen=True)
class EmailCopy:
    """How email copies go out: from whom, and the address that makes console paths absolute links."""

    sender: str
    public_url: str

    @classmethod
    def of(cls, settings: Settings) -> EmailCopy:
        return cls(settings.notification_sender, settings.public_url)


async def ensure_notification_email(session: AsyncSession, sender: str) -> None:
    """Create the internal event type and its published email template, once per database."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK})
    if await session.scalar(select(EventType.id).where(EventType.name == EVENT_TYPE)) is not None:
        return
    await create_event_type(
        session,
        EventTypeIn.model_validate(
            {
                "name": EVENT_TYPE,
                "label": "Envoi notification (to operators)",
                "schema": {
                    "type": "object",
                    "required": ["title"],
                    "properties": {field: {"type": "string"} for field in _FIELDS},
                },
                "sample": {
                    "name": "Ada",
                    "title": "Events of order_confirmation keep failing",
                    "body": "27 of the 40 events that ended in the last 5 minutes failed.",
                    "category": "action_required",
                    "url": "http://127.0.0.1:8000/console/events?type=order_confirmation",
                },
            }
        ),
    )
    template = await create_template(
        session,
        TemplateIn.model_validate(
            {
                "name": "Envoi notification",
                "eventType": EVENT_TYPE,
                "channel": "email",
                "email": {"from": sender, "subject": "[Envoi] {{ ctx.title }}", "html": _HTML, "text": _TEXT},
            }
        ),
        actor="envoi",
    )
    await publish_template(session, template.id, actor="envoi")


def absolute_link(link: str | None, public_url: str) -> str:
    """A console path as the address an email reader can open."""
    if not link:
        return ""
    return public_url.rstrip("/") + link if link.startswith("/") else link


async def send_email_copies(
    session: AsyncSession, notifications: list[Notification], operators: dict[int, Operator], copy: EmailCopy
) -> int:
    """Push one ``envoi_notification`` event per notification; returns how many went out."""
    await ensure_notification_email(session, copy.sender)
    sent = 0
    for notification in notifications:
        operator = operators[notification.operator_id]
        ctx: dict[str, Any] = {
            "name": operator.name,
            "title": notification.title,
            "body": notification.body,
            "category": notification.category,
            "url": absolute_link(notification.link, copy.public_url),
        }
        event = EventIn.model_validate(
            {
                "type": EVENT_TYPE,
                "email": operator.email,
                "ctx": ctx,
                "externalId": f"notification-{notification.id}",
                "origin": "envoi notifications",
            }
        )
        try:
            await ingest_event(session, event, api_key_id=None)
        except ValidationFailed as error:  # an address the channel refuses: the in-app copy still stands
            log.warning("notifications.email_skipped", notification=notification.id, reason=error.message)
            continue
        sent += 1
    return sent
