"""What a report does: tie it to the message we sent, keep it as a bounce, and act on it.

- hard bounce: the message becomes ``bounced``, the address is quarantined, ``message.bounced`` is announced;
- soft bounce: counted; the address is quarantined once it has ``bounce_soft_limit`` of them within
  ``bounce_soft_days``;
- complaint (a feedback-loop report): the address is quarantined;
- ignored (a delay notice, an auto-reply, a report we cannot tie to a message of ours): kept, with why.

A report is tied to its message by the signed return path it was sent to (VERP), else by the Message-ID of the
message it returns, which is only believed when the report names the address that message went to. Services
do not commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from envoi.addresses import normalize_email
from envoi.bounces.models import Bounce, BounceKind
from envoi.bounces.parsing import Report
from envoi.bounces.verp import read_message_id, read_return_path
from envoi.db.base import ADDRESS_LENGTH, utcnow
from envoi.delivery.models import Message, MessageStatus
from envoi.delivery.quarantine import add_to_quarantine
from envoi.events.models import Event, EventStatus
from envoi.settings import Settings
from envoi.tracking.secret import tracking_secret
from envoi.webhooks.models import Change
from envoi.webhooks.outbox import announce_message

log = structlog.get_logger(__name__)
_WAITING = (EventStatus.PENDING, EventStatus.PROCESSING)


class NotRecordedYet(Exception):
    """The report is about an email whose batch has not recorded it yet: the sender should try again later."""


@dataclass(frozen=True, slots=True)
class Target:
    message: Message | None
    event_id: int | None
    why: str | None = None  # why there is no message


async def load_signing_secret(sessionmaker: async_sessionmaker[AsyncSession], settings: Settings) -> None:
    """Read (or make) the secret return paths are signed with, once per process: the worker renders emails
    without the database at hand, and signs them only when it knows the secret."""
    if settings.bounce_domain:
        async with sessionmaker.begin() as session:
            await tracking_secret(session, settings)


async def record_report(
    session: AsyncSession,
    settings: Settings,
    report: Report,
    *,
    envelope_recipients: Sequence[str],
    secret: bytes,
    now: datetime | None = None,
) -> Bounce:
    """Keep the report as one bounce and act on it. Raises NotRecordedYet (nothing written) when its message is
    still being sent."""
    now = now or utcnow()
    target = await find_target(session, settings, report, envelope_recipients, secret)
    message = target.message
    if message is None:
        finding = report.main_finding
        kind = BounceKind.IGNORED
        diagnostic = finding.diagnostic if finding.kind == BounceKind.IGNORED else f"{target.why}: {finding.diagnostic}"
        address = finding.recipient
    else:
        finding = report.finding_for(message.address)
        kind, diagnostic, address = finding.kind, finding.diagnostic, message.address
    bounce = Bounce(
        received_at=now,
        kind=kind,
        message_id=message.id if message else None,
        event_id=target.event_id,
        address=_storable(address, ADDRESS_LENGTH),
        status_code=_storable(finding.status_code, 16),
        diagnostic=_storable(diagnostic, 2000),
        reporter=_storable(report.reporter, 255),
    )
    session.add(bounce)
    await session.flush()
    if message is not None and kind == BounceKind.HARD:
        await _hard_bounce(session, message, bounce, now)
    elif message is not None and kind == BounceKind.SOFT:
        await _soft_bounce(session, settings, message, bounce, now)
    elif message is not None and kind == BounceKind.COMPLAINT:
        await add_to_quarantine(session, [(message.channel, message.address, f"complaint: {bounce.diagnostic}"[:1000])])
    log.info(
        "bounces.recorded",
        bounce_id=bounce.id,
        kind=BounceKind(kind).label,
        message_id=bounce.message_id,
        event_id=bounce.event_id,
        status_code=bounce.status_code,
    )
    return bounce


def _storable(text: str | None, limit: int) -> str | None:
    """Text any database keeps: a report's headers may hold NUL or undecodable bytes (surrogates)."""
    if not text:
        return None
    return text.encode("utf-8", "replace").decode("utf-8").replace("\x00", "")[:limit] or None


async def find_target(
    session: AsyncSession, settings: Settings, report: Report, envelope_recipients: Sequence[str], secret: bytes
) -> Target:
    forged = None
    if settings.bounce_domain:
        for address in [*envelope_recipients, *report.return_paths]:
            path = read_return_path(address, secret, settings.bounce_domain)
            if path is None:
                continue
            if not path.genuine:
                forged = forged or address
                continue
            message = await _email_of(session, path.event_id)
            status = await session.scalar(select(Event.status).where(Event.id == path.event_id))
            if status in _WAITING and (message is None or message.status == MessageStatus.RETRYING):
                raise NotRecordedYet(f"event {path.event_id} is being sent")
            if message is None:
                gone = "no longer exists (purged)" if status is None else "has no email message"
                return Target(None, path.event_id, f"event {path.event_id} {gone}")
            return Target(message, path.event_id)
    for message_id in report.message_ids:
        named = read_message_id(message_id, settings.message_id_domain)
        if named is None:
            continue
        event_id, created = named
        created_at = await session.scalar(select(Event.created_at).where(Event.id == event_id))
        if created_at is None or int(created_at.timestamp()) != created:
            continue
        message = await _email_of(session, event_id)
        if message is None:
            continue
        recipient = report.finding_for(message.address).recipient
        if recipient is None or recipient.lower() != message.address.lower():
            return Target(None, event_id, "its Message-ID is ours, but it names another address than we sent to")
        return Target(message, event_id)
    if forged:
        return Target(None, None, f"the return path {forged} is not one Envoi signed")
    return Target(None, None, "no return path or Message-ID of ours in it")


async def _email_of(session: AsyncSession, event_id: int) -> Message | None:
    query = select(Message).where(Message.event_id == event_id, Message.channel == "email").order_by(Message.id.desc())
    return (await session.scalars(query.limit(1))).first()


async def _hard_bounce(session: AsyncSession, message: Message, bounce: Bounce, now: datetime) -> None:
    reason = " ".join(filter(None, (bounce.status_code, bounce.diagnostic)))
    changed = await session.execute(
        update(Message)
        .where(Message.id == message.id, Message.status != MessageStatus.BOUNCED)
        .values(status=MessageStatus.BOUNCED, error=f"bounced: {reason}"[:2000], updated_at=now)
        .returning(Message.id)
        .execution_options(synchronize_session=False)
    )
    await add_to_quarantine(session, [(message.channel, message.address, f"hard bounce: {reason}"[:1000])])
    if changed.first() is not None:  # a second report of the same bounce is not announced again
        about = {"id": message.id, "channel": message.channel, "status": "bounced", "reason": reason}
        await announce_message(session, Change.MESSAGE_BOUNCED, event_id=message.event_id, message=about, now=now)


async def _soft_bounce(
    session: AsyncSession, settings: Settings, message: Message, bounce: Bounce, now: datetime
) -> None:
    since = now - timedelta(days=settings.bounce_soft_days)
    count = await session.scalar(
        select(func.count())
        .select_from(Bounce)
        .where(Bounce.address == message.address, Bounce.kind == BounceKind.SOFT, Bounce.received_at >= since)
    )
    if (count or 0) >= settings.bounce_soft_limit:
        reason = f"{count} soft bounces in {settings.bounce_soft_days:g} days, the last: {bounce.diagnostic}"
        await add_to_quarantine(session, [(message.channel, message.address, reason[:1000])])


async def list_bounces(
    session: AsyncSession,
    *,
    address: str | None = None,
    kind: BounceKind | None = None,
    event_id: int | None = None,
    before_id: int | None = None,
    limit: int = 50,
) -> list[Bounce]:
    """Newest first; the next page is the bounces before the last id of this one."""
    query = select(Bounce).order_by(Bounce.id.desc()).limit(limit)
    if address:
        try:
            address = normalize_email(address)
        except ValueError:
            address = address.strip()
        query = query.where(Bounce.address == address)
    if kind is not None:
        query = query.where(Bounce.kind == kind)
    if event_id is not None:
        query = query.where(Bounce.event_id == event_id)
    if before_id is not None:
        query = query.where(Bounce.id < before_id)
    return list((await session.scalars(query)).all())
