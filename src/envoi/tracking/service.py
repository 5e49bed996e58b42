"""Recording opens, clicks and unsubscriptions against the email a verified token names. Services never commit:
each tracking request is its own short transaction."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from envoi.campaigns.models import Profile
from envoi.delivery.models import Message
from envoi.events.models import Event
from envoi.tracking.bots import bot_reason
from envoi.tracking.models import HitKind, TrackingHit
from envoi.webhooks.models import Change
from envoi.webhooks.outbox import announce_message

Moment = InstrumentedAttribute[datetime | None]
URL_LENGTH = 4000  # kept of a clicked URL: enough for any real link, bounded for a forged one


class UnsubscribeHow(enum.StrEnum):
    """What ``profiles.unsubscribed_how`` records."""

    ONE_CLICK = "one-click header"  # RFC 8058: the mailbox provider POSTs for its user
    LINK = "link"  # the person confirmed on the unsubscribe page


async def email_of_event(session: AsyncSession, event_id: int) -> Message | None:
    """The email sent for an event (its latest, should a fallback have made several)."""
    return await session.scalar(
        select(Message)
        .where(Message.event_id == event_id, Message.channel == "email")
        .order_by(Message.id.desc())
        .limit(1)
    )


async def record_open(
    session: AsyncSession, event_id: int, *, user_agent: str | None, now: datetime, bot_window: float
) -> TrackingHit | None:
    """The hit, or None when the event has no email (the request is then ignored)."""
    message = await email_of_event(session, event_id)
    if message is None:
        return None
    hit = _hit(session, message, HitKind.OPEN, None, user_agent, now, bot_window)
    if hit.bot is None and await _set_first(session, message, Message.opened_at, now):
        await _announce(session, message, Change.MESSAGE_OPENED, now, {})
    return hit


async def record_click(
    session: AsyncSession, event_id: int, url: str, *, user_agent: str | None, now: datetime, bot_window: float
) -> TrackingHit | None:
    """A person's click is also an open: many read with images blocked, so the pixel never loads."""
    message = await email_of_event(session, event_id)
    if message is None:
        return None
    hit = _hit(session, message, HitKind.CLICK, url[:URL_LENGTH], user_agent, now, bot_window)
    if hit.bot is None:
        if await _set_first(session, message, Message.opened_at, now):
            await _announce(session, message, Change.MESSAGE_OPENED, now, {})
        if await _set_first(session, message, Message.clicked_at, now):
            await _announce(session, message, Change.MESSAGE_CLICKED, now, {"url": url[:URL_LENGTH]})
    return hit


async def unsubscribe(
    session: AsyncSession, event_id: int, *, how: UnsubscribeHow, user_agent: str | None, now: datetime
) -> TrackingHit | None:
    """Unsubscribes the profile the email went to. Never taken for a bot: only a POST gets here, which scanners
    do not send, and a one-click POST comes from the mailbox provider on its user's behalf. Idempotent: an
    unsubscribed profile keeps when and how it first left."""
    message = await email_of_event(session, event_id)
    if message is None:
        return None
    hit = TrackingHit(message_id=message.id, kind=HitKind.UNSUBSCRIBE, user_agent=_clip(user_agent), at=now)
    session.add(hit)
    await _set_first(session, message, Message.unsubscribed_at, now)
    profile_id = await session.scalar(select(Event.profile_id).where(Event.id == event_id))
    if profile_id is not None:
        await session.execute(
            update(Profile)
            .where(Profile.id == profile_id, Profile.subscribed.is_(True))
            .values(subscribed=False, unsubscribed_at=now, unsubscribed_how=how.value, updated_at=now)
        )
    return hit


def _hit(
    session: AsyncSession,
    message: Message,
    kind: HitKind,
    url: str | None,
    user_agent: str | None,
    now: datetime,
    bot_window: float,
) -> TrackingHit:
    after = (now - message.sent_at).total_seconds() if message.sent_at is not None else None
    hit = TrackingHit(
        message_id=message.id,
        kind=kind,
        url=url,
        user_agent=_clip(user_agent),
        bot=bot_reason(user_agent, after, bot_window),
        at=now,
    )
    session.add(hit)
    return hit


async def _set_first(session: AsyncSession, message: Message, column: Moment, now: datetime) -> bool:
    """Only the first one counts; a conditional update, so two hits at once cannot both be the first."""
    if getattr(message, column.key) is not None:
        return False
    result = await session.execute(
        update(Message)
        .where(Message.id == message.id, column.is_(None))
        .values({column: now})
        .returning(Message.id)
        .execution_options(synchronize_session=False)
    )
    return result.first() is not None


async def _announce(
    session: AsyncSession, message: Message, change: Change, now: datetime, extra: dict[str, str]
) -> None:
    """The first open or click of a message, for the webhooks that want it."""
    about = {"id": message.id, "channel": message.channel, **extra}
    await announce_message(session, change, event_id=message.event_id, message=about, now=now)


def _clip(user_agent: str | None) -> str | None:
    return user_agent[:500] if user_agent else None
