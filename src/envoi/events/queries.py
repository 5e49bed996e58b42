"""Reading events back: one event with its messages and timeline, and filtered lists."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from envoi.addresses import normalize_email
from envoi.bounces.models import Bounce, BounceKind
from envoi.db.partitions import children_since
from envoi.delivery.models import Message, MessageStatus
from envoi.errors import NotFound
from envoi.events.models import Event, EventStatus, EventStatusChange
from envoi.events.schemas import EventOut, EventSummaryOut, MessageOut, TemplateRef, TimelineEntry
from envoi.templates.models import TemplateVersion

WAITING = (EventStatus.PENDING, EventStatus.PROCESSING)
# How a bounce report shows in an event's timeline.
BOUNCE_STATUSES = {
    BounceKind.HARD: "bounced",
    BounceKind.SOFT: "soft_bounce",
    BounceKind.COMPLAINT: "complaint",
    BounceKind.IGNORED: "report_ignored",
}


def event_href(event_id: int) -> str:
    return f"/api/v1/events/{event_id}"


async def get_event(session: AsyncSession, event_id: int) -> EventOut:
    event = await session.get(Event, event_id)
    if event is None:
        raise NotFound(f"event {event_id} does not exist")
    versions: dict[int, TemplateVersion] = {}
    since = children_since(event.created_at)  # on PostgreSQL, the days before the event's are not read
    mine = select(Message).where(Message.event_id == event_id, Message.created_at >= since)
    messages = list((await session.scalars(mine.order_by(Message.id))).all())
    version_ids = {m.template_version_id for m in messages} | {event.template_version_id}
    version_ids.discard(None)
    if version_ids:
        rows = await session.scalars(select(TemplateVersion).where(TemplateVersion.id.in_(version_ids)))
        versions = {v.id: v for v in rows}
    changes = await session.scalars(
        select(EventStatusChange)
        .where(EventStatusChange.event_id == event_id, EventStatusChange.at >= since)
        .order_by(EventStatusChange.id)
    )
    timeline = [TimelineEntry(status="received", at=event.created_at)]
    timeline += [TimelineEntry(status=EventStatus(c.status).label, at=c.at, reason=c.reason) for c in changes]
    bounces = await session.scalars(select(Bounce).where(Bounce.event_id == event_id).order_by(Bounce.id))
    timeline += [_bounce_entry(b) for b in bounces]  # reports come after the sending they are about
    used = versions.get(event.template_version_id) if event.template_version_id else None
    return EventOut(
        id=event.id,
        href=event_href(event.id),
        type=event.type,
        mode="batch" if event.mode else "realtime",
        channel=event.channel,
        status=EventStatus(event.status).label,
        email=event.email,
        mobile_phone=event.mobile_phone,
        external_id=event.external_id,
        origin=event.origin,
        language=event.language,
        country=event.country,
        email_format=event.email_format,
        registration_token=event.registration_token,
        platform=event.platform,
        correlation_id=event.correlation_id,
        ctx=event.ctx,
        scheduled=event.scheduled_at,
        expiration=event.expires_at,
        created_at=event.created_at,
        updated_at=event.updated_at,
        error_count=event.error_count,
        next_attempt_at=event.next_attempt_at if event.status in WAITING else None,
        last_error=event.last_error,
        template=TemplateRef(id=used.template_id, version=used.number) if used else None,
        messages=[_message_out(m, versions) for m in messages],
        timeline=timeline,
    )


def _bounce_entry(bounce: Bounce) -> TimelineEntry:
    """A report the bounce listener received about the event's email, in the event's timeline."""
    reason = " ".join(filter(None, (bounce.status_code, bounce.diagnostic)))
    if bounce.message_id is not None:
        reason = f"message {bounce.message_id}: {reason}"
    return TimelineEntry(status=BOUNCE_STATUSES[BounceKind(bounce.kind)], at=bounce.received_at, reason=reason or None)


def _message_out(message: Message, versions: dict[int, TemplateVersion]) -> MessageOut:
    version = versions.get(message.template_version_id) if message.template_version_id else None
    return MessageOut(
        id=message.id,
        channel=message.channel,
        address=message.address,
        status=MessageStatus(message.status).label,
        subject=message.subject,
        provider=message.provider,
        provider_id=message.provider_id,
        attempts=message.attempts,
        error=message.error,
        template_version=version.number if version else None,
        language=message.language,
        created_at=message.created_at,
        sent_at=message.sent_at,
    )


async def list_events(
    session: AsyncSession,
    *,
    status: EventStatus | None = None,
    event_type: str | None = None,
    email: str | None = None,
    external_id: str | None = None,
    since: datetime | None = None,
    before_id: int | None = None,
    limit: int = 50,
) -> list[EventSummaryOut]:
    """Newest first; page with ``before_id`` set to the last id of the previous page."""
    query = select(Event).order_by(Event.id.desc()).limit(limit)
    if status is not None:
        query = query.where(Event.status == status)
    if event_type:
        query = query.where(Event.type == event_type)
    if email:
        try:
            email = normalize_email(email)
        except ValueError:
            email = email.strip()
        query = query.where(Event.email == email)
    if external_id:
        query = query.where(Event.external_id == external_id)
    if since:
        query = query.where(Event.created_at >= since)
    if before_id:
        query = query.where(Event.id < before_id)
    return [
        EventSummaryOut(
            id=e.id,
            href=event_href(e.id),
            type=e.type,
            channel=e.channel,
            status=EventStatus(e.status).label,
            email=e.email,
            external_id=e.external_id,
            created_at=e.created_at,
            error_count=e.error_count,
        )
        for e in await session.scalars(query)
    ]
